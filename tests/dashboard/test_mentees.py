"""The mentor's mentee list and cockpit, the mentee's home view: content, isolation, roles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.models import MissionReview, MissionSubmission, ReadinessRecord, WorkItem
from tests.support.isolation import assert_hits

DAY = timedelta(days=1)
MENTEES = "/api/v1/mentor/mentees"
ME = "/api/v1/mentee/me"


def cockpit_url(mentee_id) -> str:
    return f"{MENTEES}/{mentee_id}/cockpit"


def work_item(mentee, *, status="open", due_in=2 * DAY, title="Review the mission"):
    now = datetime.now(UTC)
    return WorkItem(kind="mission_review", priority="high", status=status, mentee_id=mentee.id,
                    source_key=f"test:{uuid.uuid4()}", title=title, created_at=now - 3 * DAY,
                    due_at=now + due_in)


class TestMenteeList:
    async def test_lists_active_mentees_with_risk_items_and_next_session(self, client,
                                                                         factory):
        now = datetime.now(UTC)
        mentor = await factory.mentor()
        alice = await factory.mentee(name="Alice Able", tier="7", timezone="Europe/Paris")
        bob = await factory.mentee(name="Bob Brown")
        former = await factory.mentee(name="Aaron Former")
        for mentee in (alice, bob):
            await factory.assign(mentor, mentee)
        await factory.assign(mentor, former, started_at=now - 60 * DAY, ended_at=now - DAY)
        other_mentor, (theirs,) = await factory.mentor_with_mentees(1)

        await factory.flag(mentor, alice, severity="high")
        await factory.add(work_item(alice), work_item(alice, status="in_progress"),
                          work_item(alice, status="done"))
        await factory.session(mentor, alice, starts_at=now - DAY, status="completed")
        upcoming = await factory.session(mentor, alice, starts_at=now + 2 * DAY)
        await factory.session(mentor, alice, starts_at=now + 3 * DAY)
        await factory.session(mentor, alice, starts_at=now + DAY, status="cancelled")

        response = await client.get(MENTEES, headers=factory.headers(mentor))
        assert response.status_code == 200
        items = response.json()["items"]
        assert [i["mentee_id"] for i in items] == [str(alice.id), str(bob.id)]
        first = items[0]
        assert first["reasons"] == ["open_flag"] and first["risk_score"] == 40
        assert first["at_risk"] is True
        assert (first["tier"], first["timezone"], first["open_items"]) == ("7", "Europe/Paris", 2)
        assert first["next_session"]["id"] == str(upcoming.id)
        assert first["next_session"]["meeting_url"] == upcoming.meeting_url
        assert items[1]["reasons"] == [] and items[1]["at_risk"] is False
        assert items[1]["next_session"] is None
        assert str(theirs.id) not in response.text and str(former.id) not in response.text

    async def test_cursor_pagination_and_at_risk_filter(self, client, factory):
        mentor, mentees = await factory.mentor_with_mentees(5)
        for mentee in mentees[:2]:
            await factory.flag(mentor, mentee)
        headers = factory.headers(mentor)
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(MENTEES, params=params, headers=headers)).json()
            assert len(page["items"]) <= 2
            seen += [item["mentee_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = sorted(mentees, key=lambda m: (m.name, str(m.id)))
        assert seen == [str(m.id) for m in expected]

        risky = (await client.get(MENTEES, params={"at_risk": "true"}, headers=headers)).json()
        assert {i["mentee_id"] for i in risky["items"]} == {str(m.id) for m in mentees[:2]}
        calm = (await client.get(MENTEES, params={"at_risk": "false"}, headers=headers)).json()
        assert {i["mentee_id"] for i in calm["items"]} == {str(m.id) for m in mentees[2:]}

    @pytest.mark.parametrize("params", [{"cursor": "not-a-cursor"}, {"cursor": "e30"},
                                        {"limit": 0}, {"limit": 201}])
    async def test_bad_query_is_422_problem(self, client, factory, params):
        mentor, _ = await factory.mentor_with_mentees(1)
        response = await client.get(MENTEES, params=params, headers=factory.headers(mentor))
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")


class TestCockpit:
    async def test_has_every_section(self, client, factory):
        now = datetime.now(UTC)
        mentor = await factory.mentor()
        mentee = await factory.mentee(name="Cora Cockpit", interests=["python"])
        await factory.assign(mentor, mentee, score=0.82, reasons=["specialty: python"],
                             source="auto")
        other_mentor = await factory.mentor()
        past = await factory.session(mentor, mentee, starts_at=now - 2 * DAY,
                                     status="completed")
        nxt = await factory.session(mentor, mentee, starts_at=now + DAY)
        # A session with another mentor (an earlier one) is not this mentor's business.
        await factory.session(other_mentor, mentee, starts_at=now - 5 * DAY, status="completed")
        flag = await factory.flag(mentor, mentee, severity="medium", note="Missed two weeks")
        resolved = await factory.flag(mentor, mentee, status="resolved", note="Old issue")
        overdue = work_item(mentee, due_in=-timedelta(hours=1), title="Late")
        soon = work_item(mentee, due_in=timedelta(hours=5), title="Soon")
        submission_id, reviewed_id = uuid.uuid4(), uuid.uuid4()
        await factory.add(
            overdue, soon, work_item(mentee, status="done"),
            *[ReadinessRecord(mentee_id=mentee.id, score=60 + i, previous_score=59 + i,
                              recorded_at=now - (40 - i) * DAY) for i in range(35)],
            MissionSubmission(id=submission_id, mentee_id=mentee.id, mission_id=uuid.uuid4(),
                              title="Portfolio", submitted_at=now - DAY),
            MissionSubmission(id=reviewed_id, mentee_id=mentee.id, mission_id=uuid.uuid4(),
                              title="CV", submitted_at=now - 4 * DAY, status="approved"),
        )
        await factory.add(MissionReview(submission_id=reviewed_id, mentee_id=mentee.id,
                                        mentor_id=mentor.id, decision="approved", score=90))

        response = await client.get(cockpit_url(mentee.id), headers=factory.headers(mentor))
        assert response.status_code == 200
        body = response.json()
        assert body["profile"]["name"] == "Cora Cockpit"
        assert body["profile"]["interests"] == ["python"]
        assert body["assignment"]["score"] == pytest.approx(0.82)
        assert body["assignment"]["reasons"] == ["specialty: python"]
        assert body["risk"] == {"reasons": ["open_flag", "overdue_work"], "risk_score": 40,
                                "at_risk": True}
        trend = body["readiness_trend"]
        assert len(trend) == 30 and trend[-1]["score"] == 94 and trend[0]["score"] == 65
        assert [s["id"] for s in body["recent_sessions"]] == [str(past.id)]
        assert [s["id"] for s in body["upcoming_sessions"]] == [str(nxt.id)]
        assert body["upcoming_sessions"][0]["meeting_url"] == nxt.meeting_url
        items = body["open_work_items"]
        assert [i["id"] for i in items] == [str(overdue.id), str(soon.id)]
        assert items[0]["overdue"] is True and items[0]["sla_remaining_minutes"] < 0
        assert items[1]["overdue"] is False and 290 <= items[1]["sla_remaining_minutes"] < 300
        assert [f["id"] for f in body["flags"]] == [str(flag.id), str(resolved.id)]
        assert body["flags"][0]["note"] == "Missed two weeks"  # the mentor may see notes
        subs = body["recent_submissions"]
        assert [s["id"] for s in subs] == [str(submission_id), str(reviewed_id)]
        assert subs[0]["decision"] is None
        assert (subs[1]["decision"], subs[1]["review_score"]) == ("approved", 90)


@pytest.fixture
async def two_mentors(factory):
    """Mentors A and B, each with one mentee carrying recognisable private data."""
    world = {}
    for key in ("a", "b"):
        mentor = await factory.mentor(name=f"Mentor {key.upper()} Secret{uuid.uuid4().hex[:6]}")
        mentee = await factory.mentee(name=f"Mentee {key.upper()} Secret{uuid.uuid4().hex[:6]}")
        await factory.assign(mentor, mentee)
        flag = await factory.flag(mentor, mentee, note=f"note-{key}-{uuid.uuid4().hex}")
        await factory.add(work_item(mentee, title=f"item-{key}-{uuid.uuid4().hex}"))
        world[key] = {"mentor": mentor, "mentee": mentee, "flag": flag}
    director = await factory.user("director")
    admin = await factory.user("admin")
    service = await factory.user("service")
    world.update(director=director, admin=admin, service=service)
    return world


def _secrets(world, key) -> list[str]:
    side = world[key]
    return [side["mentee"].name, side["mentee"].email, str(side["mentee"].id),
            side["flag"].note, side["mentor"].name]


# The operations the isolation matrix below covers (tests/contract/test_isolation_coverage.py).
COVERS = {"GET /api/v1/mentor/mentees/{mentee_id}/cockpit"}


class TestCockpitIsolation:
    @pytest.mark.parametrize(("caller", "target", "status"), [
        ("mentor_a", "a", 200),
        ("mentor_a", "b", 404),
        ("mentor_b", "a", 404),
        ("mentor_b", "b", 200),
        ("mentee_a", "a", 403),
        ("mentee_b", "a", 403),
        ("director", "a", 403),
        ("director", "b", 403),
        ("admin", "a", 403),
        ("service", "a", 403),
    ])
    async def test_matrix(self, client, factory, two_mentors, caller, target, status):
        if caller.startswith(("mentor_", "mentee_")):
            role, key = caller.split("_")
            user = two_mentors[key][role]
        else:
            user = two_mentors[caller]
        response = await client.get(cockpit_url(two_mentors[target]["mentee"].id),
                                    headers=factory.headers(user))
        assert_hits(*COVERS, response)
        assert response.status_code == status, response.text
        if status == 200:
            other = "b" if target == "a" else "a"
            assert response.json()["profile"]["id"] == str(two_mentors[target]["mentee"].id)
            leaked = [s for s in _secrets(two_mentors, other) if s in response.text]
        else:
            assert response.headers["content-type"].startswith("application/problem+json")
            # The problem's `instance` echoes the requested path (the caller's own input).
            echoed = str(two_mentors[target]["mentee"].id)
            leaked = [s for k in ("a", "b") for s in _secrets(two_mentors, k)
                      if s in response.text and s != echoed]
        assert leaked == []

    async def test_unknown_or_former_mentee_is_404(self, client, factory, two_mentors):
        mentor = two_mentors["a"]["mentor"]
        now = datetime.now(UTC)
        former = await factory.mentee()
        await factory.assign(mentor, former, started_at=now - 9 * DAY, ended_at=now - DAY)
        for mentee_id in (uuid.uuid4(), former.id, mentor.id):
            response = await client.get(cockpit_url(mentee_id), headers=factory.headers(mentor))
            assert response.status_code == 404
            assert response.json()["code"] == "mentee_not_found"

    async def test_malformed_id_is_422(self, client, factory, two_mentors):
        response = await client.get(cockpit_url("nope"),
                                    headers=factory.headers(two_mentors["a"]["mentor"]))
        assert response.status_code == 422


class TestMenteeHome:
    async def test_profile_mentor_and_upcoming_sessions(self, client, factory):
        now = datetime.now(UTC)
        mentor = await factory.mentor(name="Maya Mentor", mentor_specialties=["python", "cv"])
        mentee = await factory.mentee(tier="7")
        await factory.assign(mentor, mentee)
        bystander = await factory.mentee()
        await factory.assign(mentor, bystander)
        running = await factory.session(mentor, mentee, starts_at=now - timedelta(minutes=10))
        later = await factory.session(mentor, mentee, starts_at=now + 2 * DAY)
        await factory.session(mentor, mentee, starts_at=now - 2 * DAY, status="completed")
        await factory.session(mentor, mentee, starts_at=now + DAY, status="cancelled")
        await factory.session(mentor, bystander, starts_at=now + 3 * DAY)

        response = await client.get(ME, headers=factory.headers(mentee))
        assert response.status_code == 200
        body = response.json()
        assert body["profile"]["id"] == str(mentee.id) and body["profile"]["tier"] == "7"
        assert body["mentor"] == {"id": str(mentor.id), "name": "Maya Mentor",
                                  "specialties": ["python", "cv"], "timezone": "UTC"}
        assert [s["id"] for s in body["upcoming_sessions"]] == [str(running.id), str(later.id)]
        assert body["upcoming_sessions"][1]["meeting_url"] == later.meeting_url
        assert body["at_risk"] is False
        assert str(bystander.id) not in response.text

    async def test_unassigned_mentee_has_no_mentor(self, client, factory):
        mentee = await factory.mentee()
        body = (await client.get(ME, headers=factory.headers(mentee))).json()
        assert body["mentor"] is None and body["upcoming_sessions"] == []
        assert body["at_risk"] is False

    async def test_banner_matches_the_mentor_side_and_never_shows_reasons(self, client,
                                                                          factory):
        now = datetime.now(UTC)
        mentor, mentees = await factory.mentor_with_mentees(4)
        flagged, overdue, no_show, calm = mentees
        note = f"confidential-{uuid.uuid4().hex}"
        await factory.flag(mentor, flagged, severity="critical", note=note,
                           category="wellbeing-private")
        await factory.add(work_item(overdue, due_in=-timedelta(hours=2)))
        await factory.session(mentor, no_show, starts_at=now - DAY, status="no_show")

        dashboard = (await client.get("/api/v1/mentor/dashboard",
                                      headers=factory.headers(mentor))).json()
        mentor_side = {item["mentee_id"] for item in dashboard["at_risk_mentees"]}
        assert mentor_side == {str(flagged.id), str(overdue.id), str(no_show.id)}
        for mentee in mentees:
            response = await client.get(ME, headers=factory.headers(mentee))
            assert response.status_code == 200
            assert response.json()["at_risk"] is (str(mentee.id) in mentor_side)
            for secret in (note, "wellbeing-private", "reasons", "risk_score", "open_flag",
                           "overdue_work", "no_show_last_session", "note"):
                assert secret not in response.text

    @pytest.mark.parametrize("role", ["mentor", "director", "admin", "service"])
    async def test_other_roles_get_403(self, client, factory, role):
        user = await factory.user(role)
        assert (await client.get(ME, headers=factory.headers(user))).status_code == 403


class TestRoles:
    @pytest.mark.parametrize("role", ["mentee", "director", "admin", "service"])
    @pytest.mark.parametrize("path", [MENTEES, cockpit_url(uuid.uuid4())])
    async def test_mentor_routes_refuse_other_roles(self, client, factory, role, path):
        user = await factory.user(role)
        response = await client.get(path, headers=factory.headers(user))
        assert response.status_code == 403
        assert response.json()["code"] == "wrong_role"

    @pytest.mark.parametrize("path", [MENTEES, cockpit_url(uuid.uuid4()), ME])
    async def test_no_token_is_401(self, client, path):
        assert (await client.get(path)).status_code == 401
