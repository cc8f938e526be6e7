"""Programme history: one row per UTC day and metric, the day's latest computation.

Every refresh of the programme metrics (each minute) also upserts today's row, so a day's
row holds the last value computed that day. Reading a range returns every day and metric in
it: a day with no computation is a row with nulls (the workers were down, or the programme
had not started), so a chart shows the gap instead of hiding it.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ProgrammeMetricDay
from app.schemas.ops import MetricDayPublic

if TYPE_CHECKING:
    from app.services.ops.metrics import MetricValue

_HISTORY = text("""
    select d.day::date as day, m.name, h.value, h.computed_at
      from generate_series(cast(:since as date), cast(:until as date), interval '1 day') d(day)
     cross join unnest(cast(:names as text[])) with ordinality m(name, position)
      left join programme_metrics_daily h on h.day = d.day::date and h.name = m.name
     order by d.day, m.position""")


async def record_day(session: AsyncSession, *, values: list[MetricValue], now: datetime) -> None:
    day = now.astimezone(UTC).date()
    statement = insert(ProgrammeMetricDay).values([
        {"day": day, "name": v.name, "value": v.value, "details": v.details,
         "computed_at": v.computed_at} for v in values
    ])
    await session.execute(statement.on_conflict_do_update(
        index_elements=[ProgrammeMetricDay.day, ProgrammeMetricDay.name],
        set_={"value": statement.excluded.value, "details": statement.excluded.details,
              "computed_at": statement.excluded.computed_at},
        where=ProgrammeMetricDay.computed_at <= statement.excluded.computed_at,
    ))


async def metrics_history(session: AsyncSession, *, since: date, until: date,
                          names: list[str]) -> list[MetricDayPublic]:
    rows = await session.execute(_HISTORY, {"since": since, "until": until, "names": names})
    return [MetricDayPublic(day=r.day, name=r.name, value=r.value, computed_at=r.computed_at)
            for r in rows]


def history_csv(rows: list[MetricDayPublic]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", "name", "value", "computed_at"])
    for row in rows:
        writer.writerow([row.day.isoformat(), row.name, "" if row.value is None else row.value,
                         row.computed_at.isoformat() if row.computed_at else ""])
    return out.getvalue()
