"""The caller's sessions as an iCalendar feed (RFC 5545), built with `icalendar`.

One VEVENT per session with a UID stable per session (`<session id>@mentorship`), so a
subscribed calendar updates the event in place; SEQUENCE is the session's `sequence`
(raised on each reschedule or cancellation); cancelled sessions stay in the feed with
STATUS:CANCELLED so subscribers remove them; all times are UTC; the meeting link is both
URL and LOCATION. Sessions that started more than `calendar_past_days` ago are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.config import Settings
from app.core.auth import Principal
from app.models import MentoringSession, User

PRODID = "-//Mentorship Coordination Engine//Sessions//EN"
UID_DOMAIN = "mentorship"
STATUS = {"scheduled": "CONFIRMED", "completed": "CONFIRMED", "no_show": "CONFIRMED",
          "cancelled": "CANCELLED"}
SUMMARY_SUFFIX = {"cancelled": " (cancelled)", "no_show": " (no-show)"}


def session_uid(session_id) -> str:
    return f"{session_id}@{UID_DOMAIN}"


def _event(row: MentoringSession, other_name: str | None, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", session_uid(row.id))
    event.add("dtstamp", stamp)
    event.add("created", row.created_at.astimezone(UTC))
    event.add("last-modified", row.updated_at.astimezone(UTC))
    event.add("dtstart", row.starts_at.astimezone(UTC))
    event.add("dtend", row.ends_at.astimezone(UTC))
    event.add("sequence", row.sequence)
    event.add("status", STATUS[row.status])
    summary = "Mentoring session" + (f" with {other_name}" if other_name else "")
    event.add("summary", summary + SUMMARY_SUFFIX.get(row.status, ""))
    if row.agenda:
        event.add("description", row.agenda)
    if row.meeting_url:
        event.add("url", row.meeting_url)
        event.add("location", row.meeting_url)
    event.add("transp", "TRANSPARENT" if row.status == "cancelled" else "OPAQUE")
    return event


async def calendar_feed(session: AsyncSession, *, principal: Principal, settings: Settings,
                        now: datetime | None = None) -> bytes:
    """The caller's sessions (as mentor or as mentee) as an iCalendar document."""
    now = now or datetime.now(UTC)
    other = aliased(User)
    # The other party's name, where RLS lets the caller see them (current mentor/mentees).
    other_id = (MentoringSession.mentee_id if principal.role == "mentor"
                else MentoringSession.mentor_id)
    rows = (await session.execute(
        select(MentoringSession, other.name)
        .outerjoin(other, other.id == other_id)
        .where(or_(MentoringSession.mentor_id == principal.user_id,
                   MentoringSession.mentee_id == principal.user_id),
               MentoringSession.starts_at >= now - timedelta(days=settings.calendar_past_days))
        .order_by(MentoringSession.starts_at, MentoringSession.id)
    )).all()

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "Mentoring sessions")
    stamp = now.astimezone(UTC).replace(microsecond=0)
    for row, other_name in rows:
        calendar.add_component(_event(row, other_name, stamp))
    return calendar.to_ical()
