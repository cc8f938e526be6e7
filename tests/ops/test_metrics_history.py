"""Programme history: one row per UTC day and metric; a day without data is a row of nulls."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from app.services.ops.metrics import DEFINITIONS, refresh_programme_metrics

HISTORY = "/api/v1/director/metrics/history"
NAMES = [d.name for d in DEFINITIONS]


async def test_history_has_every_day_and_metric_and_today_is_computed(client, factory,
                                                                    system_db):
    async with system_db.transaction(None) as session:
        await refresh_programme_metrics(session, now=datetime.now(UTC))
    director = await factory.user("director")
    today = datetime.now(UTC).date()
    since = today - timedelta(days=2)
    response = await client.get(HISTORY, headers=factory.headers(director),
                                params={"from": since.isoformat(), "to": today.isoformat()})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["day"], i["name"]) for i in items] == [
        ((since + timedelta(days=d)).isoformat(), name) for d in range(3) for name in NAMES]
    todays = [i for i in items if i["day"] == today.isoformat()]
    assert all(i["computed_at"] is not None for i in todays)
    long_ago = await client.get(HISTORY, headers=factory.headers(director),
                                params={"from": "2001-01-01", "to": "2001-01-02"})
    assert all(i["value"] is None and i["computed_at"] is None
               for i in long_ago.json()["items"])
    assert len(long_ago.json()["items"]) == 2 * len(NAMES)


async def test_csv_and_bad_ranges(client, factory):
    director = await factory.user("director")
    response = await client.get(HISTORY, headers=factory.headers(director),
                                params={"from": "2026-01-01", "to": "2026-01-03",
                                        "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["day", "name", "value", "computed_at"] and len(rows) == 1 + 3 * len(NAMES)

    for params in ({"from": "2026-02-01", "to": "2026-01-01"},
                   {"from": "2024-01-01", "to": "2026-01-01"},
                   {"from": "0001-01-01"}, {"format": "xml"}, {"from": "yesterday"}):
        bad = await client.get(HISTORY, headers=factory.headers(director), params=params)
        assert bad.status_code == 422, (params, bad.text)
    mentor = await factory.user("mentor")
    assert (await client.get(HISTORY, headers=factory.headers(mentor))).status_code == 403
