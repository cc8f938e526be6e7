"""Seed generation, part two: sessions (inside the mentors' windows, within capacity) and
work items with their causes (submissions, reviews, signals). A mixin of
`app.devtools.seed_data.Generator`."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.devtools.seed_vocab import (
    _GOALS_JSON,
    _HABITS_JSON,
    AGENDAS,
    EMAIL_DOMAIN,
    GOALS,
    HABIT_WINDOW_HOURS,
    HABITS,
    KIND_WEIGHTS,
    KINDS,
    LATE_DONE_SHARE,
    MISSIONS,
    NO_SHOW_SHARE,
    PRIORITIES,
    UNASSIGNED_ITEM_HOURS,
    UPCOMING_WEEKS,
    uuids,
)


class ActivityMixin:
    # --- sessions ---------------------------------------------------------------------------

    def sessions(self) -> None:
        rng = self.rng(3)
        rows = self.table("sessions", (
            "id", "mentor_id", "mentee_id", "starts_at", "ends_at", "duration_minutes",
            "status", "meeting_url", "agenda", "mentor_notes", "cancel_reason", "sequence",
            "created_at", "updated_at"))
        feedback = self.table("session_feedback", (
            "id", "session_id", "mentor_id", "mentee_id", "rating", "comment", "created_at"))
        total = self.sessions_per_mentor * len(self.mentees_of)
        ids = uuids(rng, total)
        feedback_ids = uuids(rng, total)
        u = rng.random((total, 4)).tolist()
        durations = rng.choice([30, 45, 60], size=total, p=[0.2, 0.3, 0.5]).tolist()
        agenda = rng.integers(0, len(AGENDAS), size=total).tolist()
        ratings = rng.choice([1, 2, 3, 4, 5], size=total,
                             p=[0.02, 0.04, 0.1, 0.35, 0.49]).tolist()
        base = self.settings.video_base_url.rstrip("/")
        now = self.now
        self.completed_of: dict[int, list[tuple[str, datetime]]] = {}
        k = 0
        for i, mentor in enumerate(self.mentors):
            mentees = self.mentees_of.get(i)
            if not mentees:
                continue
            zone = ZoneInfo(mentor["zone"])
            slots = [(d, h) for d, s, e in mentor["windows"] for h in range(s, e)]
            per_week, weeks = self._per_week(mentor), self.history_weeks[i]
            upcoming = min(UPCOMING_WEEKS, weeks - 1)
            today = now.astimezone(zone).date()
            this_monday = today - timedelta(days=today.weekday())
            rotation = [mentees[x] for x in rng.permutation(len(mentees)).tolist()]
            left = self.sessions_per_mentor
            for week in range(upcoming, upcoming - weeks, -1):  # newest week first
                count = min(per_week, left)
                left -= count
                monday = this_monday + timedelta(weeks=week)
                for slot in sorted(rng.choice(len(slots), size=count, replace=False).tolist()):
                    weekday, hour = slots[slot]
                    day = monday + timedelta(days=weekday)
                    # Local wall time in the mentor's zone (DST-aware), stored in UTC.
                    starts = datetime(day.year, day.month, day.day, hour,
                                      tzinfo=zone).astimezone(UTC)
                    minutes = durations[k]
                    ends = starts + timedelta(minutes=minutes)
                    j = rotation[k % len(rotation)]
                    mentee_id = self.mentees[j]["id"]
                    r = u[k]
                    booked = min(now, max(self.assigned_at[j],
                                          starts - timedelta(days=1 + 13 * r[1])))
                    notes = reason = None
                    sequence, updated = 0, booked
                    if ends <= now:
                        status = ("completed" if r[0] < 0.93 - NO_SHOW_SHARE else
                                  "no_show" if r[0] < 0.93 else "cancelled")
                    else:
                        status = "cancelled" if r[0] < 0.06 else "scheduled"
                    if status == "completed":
                        notes, updated = "Good progress; next steps agreed.", ends
                        self.completed_of.setdefault(j, []).append((ids[k], ends))
                        if r[2] < 0.6:
                            rating = ratings[k]
                            feedback.rows.append((
                                feedback_ids[k], ids[k], mentor["id"], mentee_id, rating,
                                "Very helpful" if rating >= 4 else None,
                                min(now, ends + timedelta(hours=1 + 47 * r[3]))))
                    elif status == "no_show":
                        updated = ends
                    elif status == "cancelled":
                        reason, sequence = "Schedule conflict", 1
                        updated = max(booked, min(now, starts - timedelta(hours=2)))
                    rows.rows.append((
                        ids[k], mentor["id"], mentee_id, starts, ends, minutes, status,
                        f"{base}/mentorship-{ids[k][:8]}{ids[k][9:13]}{ids[k][14:18]}",
                        AGENDAS[agenda[k]], notes, reason, sequence, booked, updated))
                    k += 1

    # --- work items and their causes -------------------------------------------------------

    def work_items(self) -> None:
        rng = self.rng(4)
        items = self.table("work_items", (
            "id", "kind", "priority", "status", "mentee_id", "source_key", "title", "details",
            "due_at", "overdue", "escalated_at", "note", "created_at", "updated_at",
            "started_at", "completed_at", "completed_by"))
        submissions = self.table("mission_submissions", (
            "id", "mentee_id", "mission_id", "title", "url", "submitted_at", "status",
            "created_at"))
        reviews = self.table("mission_reviews", (
            "id", "submission_id", "mentee_id", "mentor_id", "decision", "feedback", "score",
            "created_at"))
        signals = self.table("mentee_signals", (
            "id", "mentee_id", "kind", "data", "occurred_at", "event_id", "created_at"))

        total = self.n_mentees * self.items_per_mentee
        ids = uuids(rng, total)
        causes = uuids(rng, total)  # submission / event ids
        extra_ids = uuids(rng, total)  # review / signal row ids
        mission_ids = uuids(rng, len(MISSIONS))
        u = rng.random((total, 6)).tolist()
        kind_draw = rng.choice(len(KINDS), size=total, p=KIND_WEIGHTS).tolist()
        ages = rng.exponential(15 * 24, size=total).tolist()  # hours
        response = rng.lognormal(math.log(8), 0.7, size=total).tolist()  # hours to done
        draws = rng.integers(0, 1 << 30, size=(total, 2)).tolist()
        goal_tiers = set(self.settings.goal_feedback_tiers)
        policy = {kind: self.settings.sla(kind) for kind in KINDS}
        window_h = {kind: float(p.hours) for kind, p in policy.items()}
        now = self.now
        hour = timedelta(hours=1)
        k = 0
        for j, mentee in enumerate(self.mentees):
            mentee_id = mentee["id"]
            mentor_index = self.mentor_of.get(j)
            mentor_id = self.mentors[mentor_index]["id"] if mentor_index is not None else None
            followups = list(self.completed_of.get(j, ()))
            if mentor_id is not None:
                oldest_h = (now - self.assigned_at[j]) / hour
            else:  # waiting for a mentor: recent items only, nobody works them yet
                oldest_h = min(UNASSIGNED_ITEM_HOURS, (now - mentee["created_at"]) / hour)
            habit_trouble = j in self.habit_trouble
            late = j in self.overdue_trouble
            for n in range(self.items_per_mentee):
                r = u[k]
                kind = KINDS[kind_draw[k]]
                # The mentees chosen for a risk reason show it through their first items:
                # a streak broken this week; an item past its SLA, still unfinished.
                recent_habit = habit_trouble and n == 0
                forced_late = late and n == (1 if habit_trouble else 0)
                if recent_habit:
                    kind = "risk_assessment"
                elif forced_late:
                    kind = "mission_review"
                if kind == "session_followup" and not followups:
                    kind = "mission_review"
                if kind == "goal_feedback" and mentee["tier"] not in goal_tiers:
                    kind = "risk_assessment"
                # Everyone else's broken streaks are older than the risk window (a week);
                # someone waiting for a mentor has no history that old.
                if (kind == "risk_assessment" and not recent_habit
                        and oldest_h * 0.98 < HABIT_WINDOW_HOURS + 1):
                    kind = "mission_review"
                w = window_h[kind]
                if kind == "session_followup":
                    session_id, created = followups.pop(draws[k][0] % len(followups))
                else:
                    age_h = oldest_h * r[0] if mentor_id is None else ages[k]
                    if recent_habit:
                        age_h = (HABIT_WINDOW_HOURS - 1) * r[0]
                    elif kind == "risk_assessment":
                        age_h += HABIT_WINDOW_HOURS + 1
                    elif forced_late:
                        age_h = w * (1.05 + r[0])
                    elif mentor_id is None and not late:
                        age_h = min(age_h, 0.9 * w)  # nobody works them, but none is late
                    created = (now - min(age_h, oldest_h * 0.98) * hour).replace(microsecond=0)
                age_h = (now - created) / hour
                if mentor_id is None:
                    status = "open"
                elif forced_late and age_h > w:
                    status = "in_progress" if r[2] < 0.3 else "open"
                else:  # old items are done (but for a few late mentees); young ones less so
                    done_p = (LATE_DONE_SHARE if late else 1.0) if age_h > w else 0.85 * age_h / w
                    status = ("done" if r[1] < done_p else
                              "in_progress" if r[2] < 0.3 else "open")
                completed = started = completed_by = None
                if status == "done":
                    completed = created + min(response[k], age_h * 0.95) * hour
                    started = created + (completed - created) / 2
                    completed_by = mentor_id
                elif status == "in_progress":
                    started = created + (now - created) * r[3]
                priority = policy[kind].priority
                escalated = None
                if ((completed or now) - created) / hour >= 0.75 * w:  # raised once, at 75 %
                    escalated = created + 0.75 * w * hour
                    priority = PRIORITIES[min(3, PRIORITIES.index(priority) + 1)]
                due = created + w * hour
                cause = causes[k]
                if kind == "mission_review":
                    m = draws[k][1] % len(MISSIONS)
                    title = f"Review mission: {MISSIONS[m]}"
                    source = f"mission.submitted:{cause}"
                    details = f'{{"submission_id": "{cause}", "mission_id": "{mission_ids[m]}"}}'
                    decision = None
                    if status == "done":
                        decision = ("approved" if r[4] < 0.7 else
                                    "changes_requested" if r[4] < 0.92 else "rejected")
                    submissions.rows.append((
                        cause, mentee_id, mission_ids[m], MISSIONS[m],
                        f"https://portfolio.{EMAIL_DOMAIN}/submissions/{cause}", created,
                        decision or "pending", created))
                    if decision:
                        approved = decision == "approved"
                        reviews.rows.append((
                            extra_ids[k], cause, mentee_id, mentor_id, decision,
                            "Solid work." if approved else "See comments.",
                            int((60 if approved else 30) + 40 * r[5]), completed))
                elif kind == "session_followup":
                    title = f"Follow up on the session of {created:%Y-%m-%d}"
                    source = f"session.completed:{session_id}"
                    details = f'{{"session_id": "{session_id}"}}'
                elif kind == "risk_assessment":
                    h = draws[k][1] % len(HABITS)
                    streak = 3 + draws[k][1] % 40
                    title = f"Habit streak broken: {HABITS[h]} ({streak} days)"
                    source = f"habit.streak_broken:{cause}"
                    details = f'{{"habit": {_HABITS_JSON[h]}, "streak_days": {streak}}}'
                    signals.rows.append((extra_ids[k], mentee_id, "habit_streak_broken",
                                         details, created, cause, created))
                else:  # goal_feedback
                    g = draws[k][1] % len(GOALS)
                    goal_due = (created - timedelta(days=1)).isoformat()
                    title = f"Goal overdue: {GOALS[g]}"
                    source = f"goal.overdue:{cause}"
                    details = (f'{{"goal_id": "{cause}", "title": {_GOALS_JSON[g]}, '
                               f'"due_at": "{goal_due}"}}')
                    signals.rows.append((extra_ids[k], mentee_id, "goal_overdue", details,
                                         created, cause, created))
                items.rows.append((
                    ids[k], kind, priority, status, mentee_id, source, title, details, due,
                    status != "done" and due < now, escalated, None, created,
                    completed or started or created, started, completed, completed_by))
                k += 1
