"""Creating work items: idempotent by `source_key`, SLA from settings, outbox in the same
transaction. Listing, transitions and the SLA sweep build on this module."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, DateTime, Integer, Text, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.outbox import REFRESH_PRIORITY, OutboundEvent, outbox_rows
from app.models.work_item import PRIORITIES

PRIORITY_ORDER = PRIORITIES  # escalation order, lowest first


@dataclass(frozen=True)
class NewWorkItem:
    kind: str
    mentee_id: uuid.UUID
    source_key: str
    title: str
    details: dict[str, Any] | None = None
    created_at: datetime | None = None


async def create_work_item(
    session: AsyncSession,
    *,
    settings: Settings,
    kind: str,
    mentee_id: uuid.UUID,
    source_key: str,
    title: str,
    details: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> uuid.UUID | None:
    """Create the item unless one with `source_key` exists. Returns the new id, or None
    when it already existed (a repeated event or job: nothing changes, nothing is emitted).

    The due date follows the kind's SLA policy from `created_at` (default: now)."""
    created = await create_work_items(session, settings=settings, items=[NewWorkItem(
        kind=kind, mentee_id=mentee_id, source_key=source_key, title=title, details=details,
        created_at=created_at,
    )])
    return created.get(source_key)


async def create_work_items(
    session: AsyncSession, *, settings: Settings, items: Sequence[NewWorkItem]
) -> dict[str, uuid.UUID]:
    """`create_work_item` for many items in one statement whatever their number (event
    batches): returns {source_key: new id} for the items created; existing keys are skipped
    silently. Each created item emits `workqueue.item_created` to the mentee's mentor."""
    if not (parameters := work_items_parameters(settings, items)):
        return {}
    return {row.source_key: row.id for row in await session.execute(_CREATE_ITEMS, parameters)}


def work_items_parameters(settings: Settings, items: Sequence[NewWorkItem]) -> dict[str, Any]:
    """The parameters of a `work_items_statement()` creating `items` ({} if none)."""
    now = datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    for item in items:
        policy = settings.sla(item.kind)
        created_at = item.created_at or now
        rows.setdefault(item.source_key, {
            "id": uuid.uuid4(), "kind": item.kind, "priority": policy.priority,
            "mentee_id": item.mentee_id, "source_key": item.source_key, "title": item.title,
            "details": item.details or {}, "created_at": created_at,
            "due_at": created_at + timedelta(hours=policy.hours),
        })
    if not rows:
        return {}
    # Each item's event is prepared whether or not the item turns out new (the statement
    # emits only for the inserted ones, with the mentee the item was stored with); the
    # recipient, the mentee's active mentor, is looked up by the statement.
    events = outbox_rows([
        OutboundEvent("workqueue.item_created", {
            "item_id": row["id"], "kind": row["kind"], "priority": row["priority"],
            "mentee_id": row["mentee_id"], "due_at": row["due_at"], "title": row["title"],
        }, (), now)
        for row in rows.values()
    ])
    emit_order = {key: n for n, key in enumerate(rows)}
    event_of = dict(zip(rows, events, strict=True))
    # Inserted in key order, so concurrent callers sharing keys wait on them in the same
    # order (no deadlock); events emitted in the items' order.
    keys = sorted(rows)
    return {
        "ids": [rows[k]["id"] for k in keys], "kinds": [rows[k]["kind"] for k in keys],
        "priorities": [rows[k]["priority"] for k in keys],
        "mentee_ids": [rows[k]["mentee_id"] for k in keys], "source_keys": keys,
        "titles": [rows[k]["title"] for k in keys],
        "details": [json.dumps(rows[k]["details"]) for k in keys],
        "created_ats": [rows[k]["created_at"] for k in keys],
        "due_ats": [rows[k]["due_at"] for k in keys],
        "emit_order": [emit_order[k] for k in keys],
        "event_ids": [event_of[k]["id"] for k in keys],
        "event_data": [json.dumps(event_of[k]["data"]) for k in keys],
        "occurred_at": now, "refresh_priority": REFRESH_PRIORITY["workqueue.item_created"],
    }


def work_items_statement(*, before: str = "", mentee: str = "x.mentee_id", where: str = "",
                         parameters: Sequence[BindParameter[Any]] = ()) -> TextClause:
    """One round trip for what was three (insert, the mentors' lookup, the outbox
    executemany): the items not already there (by source_key) are inserted, and each
    inserted one gets its `workqueue.item_created` through `outbox_emit()` (the same checks
    as `emit`), addressed to the mentee's active mentor if any. Rows: (source_key, id) of
    the items created.

    A caller may put its own CTEs first (`before`, ending with a comma, with their
    `parameters`), choose each item's mentee (`mentee`, an expression over the input `x`)
    and add joins and a WHERE clause on `x` (`where`): the mission submissions' statement
    (app/services/events/inbound.py) stores the submissions in the same round trip."""
    return text(f"""
with {before} input as (
  select x.id, x.kind, x.priority, {mentee} as mentee_id, x.source_key, x.title, x.details,
         x.created_at, x.due_at, x.emit_order, x.event_id, x.event_data, x.n
    from unnest(:ids, :kinds, :priorities, :mentee_ids, :source_keys, :titles,
                cast(:details as jsonb[]), :created_ats, :due_ats, :emit_order,
                :event_ids, cast(:event_data as jsonb[])) with ordinality
      as x(id, kind, priority, mentee_id, source_key, title, details, created_at, due_at,
           emit_order, event_id, event_data, n)
    {where}
), created as (
  insert into work_items (id, kind, priority, mentee_id, source_key, title, details,
                          created_at, due_at)
  select id, kind, priority, mentee_id, source_key, title, details, created_at, due_at
    from input order by n
  on conflict (source_key) do nothing
  returning source_key, id, mentee_id
)
select c.source_key, c.id,
       outbox_emit(i.event_id, 'workqueue.item_created', :occurred_at,
                   jsonb_set(i.event_data, '{{mentee_id}}', to_jsonb(c.mentee_id)),
                   :refresh_priority, array_remove(array[a.mentor_id], null))
  from created c
  join input i on i.source_key = c.source_key
  left join assignments a on a.mentee_id = c.mentee_id and a.ended_at is null
 order by i.emit_order
""").bindparams(
        bindparam("ids", type_=ARRAY(PgUUID(as_uuid=True))),
        bindparam("kinds", type_=ARRAY(Text)), bindparam("priorities", type_=ARRAY(Text)),
        bindparam("mentee_ids", type_=ARRAY(PgUUID(as_uuid=True))),
        bindparam("source_keys", type_=ARRAY(Text)), bindparam("titles", type_=ARRAY(Text)),
        bindparam("details", type_=ARRAY(Text)),
        bindparam("created_ats", type_=ARRAY(DateTime(timezone=True))),
        bindparam("due_ats", type_=ARRAY(DateTime(timezone=True))),
        bindparam("emit_order", type_=ARRAY(Integer)),
        bindparam("event_ids", type_=ARRAY(PgUUID(as_uuid=True))),
        bindparam("event_data", type_=ARRAY(Text)),
        bindparam("occurred_at", type_=DateTime(timezone=True)),
        *parameters,
    ).columns(source_key=Text, id=PgUUID(as_uuid=True))


_CREATE_ITEMS = work_items_statement()
