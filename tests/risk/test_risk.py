"""Each risk reason turns on and off at its threshold, computed the mentor's way (RLS, one
set-based query) and the mentee's way (`mentee_at_risk()`), which must always agree."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from app.core.auth import Principal
from app.models import Flag, MenteeSignal, ReadinessRecord, User, WorkItem
from app.services.risk import scoring as risk
from app.services.risk.scoring import mentees_risk, mentor_risk, own_at_risk

DAY = timedelta(days=1)


@dataclass
class Pair:
    mentor: User
    mentee: User


@pytest.fixture
async def pair(factory) -> Pair:
    """A mentee assigned 60 days ago who had a completed session 2 days ago: no reason."""
    now = datetime.now(UTC)
    mentor, mentee = await factory.mentor(), await factory.mentee()
    await factory.assign(mentor, mentee, started_at=now - 60 * DAY)
    await factory.session(mentor, mentee, starts_at=now - 2 * DAY, status="completed")
    return Pair(mentor, mentee)


async def evaluate(app_db, pair: Pair) -> tuple[list[str], int]:
    """The mentor-side reasons and score; asserts the mentee's banner agrees."""
    now = datetime.now(UTC)
    async with app_db.transaction(Principal(pair.mentor.id, "mentor")) as session:
        result = (await mentor_risk(session, mentor_id=pair.mentor.id, now=now))[pair.mentee.id]
    async with app_db.transaction(Principal(pair.mentee.id, "mentee")) as session:
        banner = await own_at_risk(session)
    assert banner == result.at_risk, (banner, result)
    return result.reasons, result.risk_score


async def test_baseline_has_no_reason(app_db, pair):
    assert await evaluate(app_db, pair) == ([], 0)


class TestReadinessDrop:
    @pytest.mark.parametrize(("drop", "expected"), [
        (risk.READINESS_DROP_POINTS - 1, []),
        (risk.READINESS_DROP_POINTS, [risk.READINESS_DROP]),
    ])
    async def test_threshold(self, app_db, factory, pair, drop, expected):
        now = datetime.now(UTC)
        await factory.add(
            ReadinessRecord(mentee_id=pair.mentee.id, score=80, previous_score=78,
                            recorded_at=now - 10 * DAY),
            ReadinessRecord(mentee_id=pair.mentee.id, score=80 - drop, previous_score=80,
                            recorded_at=now - DAY),
        )
        assert (await evaluate(app_db, pair))[0] == expected

    async def test_gradual_drop_inside_the_window_counts(self, app_db, factory, pair):
        now = datetime.now(UTC)
        await factory.add(*[
            ReadinessRecord(mentee_id=pair.mentee.id, score=score, previous_score=prev,
                            recorded_at=now - days * DAY)
            for score, prev, days in [(80, None, 13), (75, 80, 8), (70, 75, 1)]
        ])
        assert (await evaluate(app_db, pair))[0] == [risk.READINESS_DROP]

    async def test_drop_older_than_the_window_does_not_count(self, app_db, factory, pair):
        now = datetime.now(UTC)
        await factory.add(ReadinessRecord(mentee_id=pair.mentee.id, score=60,
                                          previous_score=80, recorded_at=now - 15 * DAY))
        assert (await evaluate(app_db, pair))[0] == []

    async def test_recovered_score_does_not_count(self, app_db, factory, pair):
        now = datetime.now(UTC)
        await factory.add(*[
            ReadinessRecord(mentee_id=pair.mentee.id, score=score, previous_score=prev,
                            recorded_at=now - days * DAY)
            for score, prev, days in [(65, 80, 5), (78, 65, 1)]
        ])
        assert (await evaluate(app_db, pair))[0] == []


class TestHabitStreak:
    @pytest.mark.parametrize(("days_ago", "expected"), [
        (6, [risk.HABIT_STREAK_BROKEN]),
        (8, []),
    ])
    async def test_window(self, app_db, factory, pair, days_ago, expected):
        assert risk.HABIT_WINDOW == 7 * DAY
        await factory.add(MenteeSignal(
            mentee_id=pair.mentee.id, kind="habit_streak_broken",
            data={"habit": "reading", "streak_days": 12},
            occurred_at=datetime.now(UTC) - days_ago * DAY))
        assert (await evaluate(app_db, pair))[0] == expected

    async def test_other_signal_kinds_do_not_count(self, app_db, factory, pair):
        await factory.add(MenteeSignal(mentee_id=pair.mentee.id, kind="goal_overdue",
                                       occurred_at=datetime.now(UTC) - DAY))
        assert (await evaluate(app_db, pair))[0] == []


class TestNoRecentSession:
    @pytest.mark.parametrize(("days_ago", "expected"), [
        (20, []),
        (22, [risk.NO_RECENT_SESSION]),
    ])
    async def test_window(self, app_db, factory, days_ago, expected):
        assert risk.NO_SESSION_WINDOW == 21 * DAY
        now = datetime.now(UTC)
        mentor, mentee = await factory.mentor(), await factory.mentee()
        await factory.assign(mentor, mentee, started_at=now - 60 * DAY)
        await factory.session(mentor, mentee, starts_at=now - days_ago * DAY,
                              status="completed")
        # A booked future session does not make up for it.
        await factory.session(mentor, mentee, starts_at=now + 2 * DAY)
        assert (await evaluate(app_db, Pair(mentor, mentee)))[0] == expected

    @pytest.mark.parametrize(("assigned_days_ago", "expected"), [
        (20, []),
        (22, [risk.NO_RECENT_SESSION]),
    ])
    async def test_new_mentee_gets_21_days_grace(self, app_db, factory, assigned_days_ago,
                                                 expected):
        mentor, mentee = await factory.mentor(), await factory.mentee()
        await factory.assign(mentor, mentee,
                             started_at=datetime.now(UTC) - assigned_days_ago * DAY)
        assert (await evaluate(app_db, Pair(mentor, mentee)))[0] == expected

    async def test_started_session_not_yet_closed_counts_as_held(self, app_db, factory):
        now = datetime.now(UTC)
        mentor, mentee = await factory.mentor(), await factory.mentee()
        await factory.assign(mentor, mentee, started_at=now - 60 * DAY)
        # Ended 1 h 59 min ago: the mentor has two hours to record the outcome.
        await factory.session(mentor, mentee, starts_at=now - timedelta(minutes=179),
                              status="scheduled")
        assert (await evaluate(app_db, Pair(mentor, mentee)))[0] == []

    async def test_session_still_scheduled_two_hours_after_its_end_is_not_contact(
            self, app_db, factory):
        now = datetime.now(UTC)
        mentor, mentee = await factory.mentor(), await factory.mentee()
        await factory.assign(mentor, mentee, started_at=now - 60 * DAY)
        await factory.session(mentor, mentee, starts_at=now - timedelta(minutes=181),
                              status="scheduled")
        assert (await evaluate(app_db, Pair(mentor, mentee)))[0] == [risk.NO_RECENT_SESSION]

    async def test_cancelled_and_no_show_sessions_are_not_held(self, app_db, factory):
        now = datetime.now(UTC)
        mentor, mentee = await factory.mentor(), await factory.mentee()
        await factory.assign(mentor, mentee, started_at=now - 60 * DAY)
        await factory.session(mentor, mentee, starts_at=now - 30 * DAY, status="completed")
        await factory.session(mentor, mentee, starts_at=now - 3 * DAY, status="cancelled")
        reasons, _ = await evaluate(app_db, Pair(mentor, mentee))
        assert reasons == [risk.NO_RECENT_SESSION]

    async def test_sessions_with_a_previous_mentor_do_not_count(self, app_db, factory):
        now = datetime.now(UTC)
        old, new, mentee = await factory.mentor(), await factory.mentor(), await factory.mentee()
        await factory.assign(old, mentee, started_at=now - 90 * DAY, ended_at=now - 30 * DAY)
        await factory.assign(new, mentee, started_at=now - 30 * DAY)
        await factory.session(old, mentee, starts_at=now - 2 * DAY, status="no_show")
        # Neither the old mentor's recent no-show nor its date counts for the new mentor.
        assert (await evaluate(app_db, Pair(new, mentee)))[0] == [risk.NO_RECENT_SESSION]


class TestOverdueWork:
    @pytest.mark.parametrize(("due_in", "status", "expected"), [
        (-timedelta(minutes=5), "open", [risk.OVERDUE_WORK]),
        (-timedelta(minutes=5), "in_progress", [risk.OVERDUE_WORK]),
        (timedelta(minutes=5), "open", []),
        (-timedelta(minutes=5), "done", []),
    ])
    async def test_due_at(self, app_db, factory, pair, due_in, status, expected):
        now = datetime.now(UTC)
        await factory.add(WorkItem(
            kind="mission_review", priority="high", status=status, mentee_id=pair.mentee.id,
            source_key=f"test:{uuid.uuid4()}", title="Review", created_at=now - 3 * DAY,
            due_at=now + due_in))
        assert (await evaluate(app_db, pair))[0] == expected


class TestNoShow:
    async def test_no_show_at_the_last_session(self, app_db, factory, pair):
        now = datetime.now(UTC)
        await factory.session(pair.mentor, pair.mentee, starts_at=now - DAY, status="no_show")
        # Cancelled sessions and sessions still to come are not "the last session".
        await factory.session(pair.mentor, pair.mentee, starts_at=now - DAY / 2,
                              status="cancelled")
        await factory.session(pair.mentor, pair.mentee, starts_at=now + DAY)
        assert (await evaluate(app_db, pair))[0] == [risk.NO_SHOW_LAST_SESSION]

    async def test_earlier_no_show_followed_by_a_completed_session(self, app_db, factory,
                                                                   pair):
        now = datetime.now(UTC)
        # pair already has a completed session 2 days ago
        await factory.session(pair.mentor, pair.mentee, starts_at=now - 5 * DAY,
                              status="no_show")
        assert (await evaluate(app_db, pair))[0] == []


class TestOpenFlag:
    @pytest.mark.parametrize(("status", "expected"), [
        ("open", [risk.OPEN_FLAG]),
        ("resolved", []),
    ])
    async def test_status(self, app_db, factory, pair, status, expected):
        await factory.flag(pair.mentor, pair.mentee, status=status)
        assert (await evaluate(app_db, pair))[0] == expected

    @pytest.mark.parametrize("severity", ["low", "medium", "high", "critical"])
    async def test_weight_follows_the_highest_open_severity(self, app_db, factory, pair,
                                                            severity):
        await factory.flag(pair.mentor, pair.mentee, severity="low")
        await factory.flag(pair.mentor, pair.mentee, severity=severity)
        await factory.flag(pair.mentor, pair.mentee, severity="critical", status="resolved")
        assert await evaluate(app_db, pair) == ([risk.OPEN_FLAG], risk.FLAG_WEIGHTS[severity])


async def test_score_sums_the_weights_and_caps_at_100(app_db, factory):
    now = datetime.now(UTC)
    mentor, mentee = await factory.mentor(), await factory.mentee()
    pair = Pair(mentor, mentee)
    await factory.assign(mentor, mentee, started_at=now - 60 * DAY)
    await factory.session(mentor, mentee, starts_at=now - 30 * DAY, status="no_show")
    await factory.add(
        MenteeSignal(mentee_id=mentee.id, kind="habit_streak_broken", occurred_at=now - DAY),
        ReadinessRecord(mentee_id=mentee.id, score=50, previous_score=70,
                        recorded_at=now - DAY),
        WorkItem(kind="goal_feedback", priority="normal", mentee_id=mentee.id,
                 source_key=f"test:{uuid.uuid4()}", title="Goal", created_at=now - 9 * DAY,
                 due_at=now - DAY),
    )
    reasons, score = await evaluate(app_db, pair)
    assert reasons == [risk.NO_SHOW_LAST_SESSION, risk.READINESS_DROP, risk.OVERDUE_WORK,
                       risk.HABIT_STREAK_BROKEN, risk.NO_RECENT_SESSION]
    assert score == sum(risk.WEIGHTS.values()) == 85

    await factory.flag(mentor, mentee, severity="low")
    reasons, score = await evaluate(app_db, pair)
    assert tuple(reasons) == risk.REASONS
    assert score == risk.MAX_SCORE  # 85 + 15 = 100
    await factory.flag(mentor, mentee, severity="critical")
    assert (await evaluate(app_db, pair))[1] == risk.MAX_SCORE  # 145, capped


class TestVisibility:
    async def test_a_mentor_learns_nothing_about_another_mentors_mentee(self, app_db, factory,
                                                                        pair):
        await factory.flag(pair.mentor, pair.mentee, severity="critical")
        other = await factory.mentor()
        async with app_db.transaction(Principal(other.id, "mentor")) as session:
            mine = await mentor_risk(session, mentor_id=other.id, now=datetime.now(UTC))
            probed = await mentees_risk(session, mentee_ids=[pair.mentee.id],
                                        now=datetime.now(UTC))
        assert mine == {}
        assert probed[pair.mentee.id].reasons == []  # RLS hides the inputs

    async def test_mentee_banner_is_only_for_mentees_and_only_about_themselves(
            self, app_db, factory, pair):
        await factory.flag(pair.mentor, pair.mentee, severity="critical")
        async with app_db.transaction(Principal(pair.mentee.id, "mentee")) as session:
            assert await own_at_risk(session) is True
        async with app_db.transaction(Principal(pair.mentor.id, "mentor")) as session:
            assert await own_at_risk(session) is False  # NULL for any other role
        # Another mentee's banner is their own business.
        other = await factory.mentee()
        async with app_db.transaction(Principal(other.id, "mentee")) as session:
            assert await own_at_risk(session) is False

    async def test_mentee_cannot_read_risk_inputs_directly(self, app_db, factory, pair):
        await factory.flag(pair.mentor, pair.mentee, severity="critical")
        async with app_db.transaction(Principal(pair.mentee.id, "mentee")) as session:
            direct = await mentees_risk(session, mentee_ids=[pair.mentee.id],
                                        now=datetime.now(UTC))
            flags = (await session.scalars(
                select(Flag).where(Flag.mentee_id == pair.mentee.id))).all()
        assert direct[pair.mentee.id].reasons == [] and flags == []

    async def test_banner_function_is_a_definer_owned_by_a_role_that_bypasses_rls(
            self, system_db):
        async with system_db.transaction(None) as session:
            row = (await session.execute(text(
                "select p.prosecdef, p.proconfig, r.rolname, "
                "r.rolsuper or r.rolbypassrls as bypass, "
                "has_function_privilege('public', p.oid, 'execute') as public_exec "
                "from pg_proc p join pg_roles r on r.oid = p.proowner "
                "where p.proname = 'mentee_at_risk'"))).one()
        assert row.prosecdef and row.bypass and not row.public_exec
        assert row.rolname == "mentorship_worker"
        assert any(c.startswith("search_path=") for c in row.proconfig)
