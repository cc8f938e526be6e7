"""A realistic, deterministic programme for demos, tests and benchmarks.

`seed(settings, mentors=..., mentees=..., seed=...)` generates every row in memory (numpy
draws, one child generator per table so tables do not shift each other) and bulk-loads them
with COPY over one connection of the workers' role (the system, BYPASSRLS), in a single
transaction: the database ends up either seeded or untouched.

Same `seed` and same `now` -> the same rows, ids included. What the data respects:
- mentors: IANA zones around the world, weekly availability windows in their own zone,
  specialties, weekly capacity and a maximum of mentees; mentees: zones, interests, tiers
  "1".."7";
- assignments: one active per mentee, never more than `mentor_max_mentees` per mentor,
  every mentor with at least one mentee (when there are enough), the rest of the mentees
  left unassigned for the matcher; a few ended assignments as history;
- sessions: only with the mentee's current mentor, on whole-hour slots inside the mentor's
  windows (local time, DST-aware), distinct slots so nothing overlaps for a mentor or a
  mentee, and at most `mentor_capacity_weekly` live sessions in any ISO week of the mentor's
  zone; past ones completed / no-show / cancelled, upcoming ones scheduled;
- work items of every kind with their SLA due dates (some overdue, some escalated), each
  with its cause: mission submissions (and reviews of the decided ones), habit and goal
  signals, completed sessions; flags; readiness history (some sharp drops).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np
from sqlalchemy.engine import make_url

from app.config import Settings
from app.models import Base

# --- vocabulary ------------------------------------------------------------------------------

# (zone, weight): where mentors and mentees live; includes half- and quarter-hour offsets.
ZONES: list[tuple[str, float]] = [
    ("America/Los_Angeles", 6), ("America/Denver", 2), ("America/Chicago", 4),
    ("America/New_York", 8), ("America/Toronto", 3), ("America/Mexico_City", 3),
    ("America/Bogota", 2), ("America/Sao_Paulo", 4), ("America/Argentina/Buenos_Aires", 2),
    ("America/St_Johns", 0.5), ("Europe/London", 7), ("Europe/Dublin", 1),
    ("Europe/Paris", 4), ("Europe/Berlin", 5), ("Europe/Madrid", 3), ("Europe/Warsaw", 2),
    ("Europe/Istanbul", 2), ("Africa/Lagos", 4), ("Africa/Cairo", 2), ("Africa/Nairobi", 3),
    ("Africa/Johannesburg", 2), ("Asia/Dubai", 2), ("Asia/Karachi", 2), ("Asia/Kolkata", 7),
    ("Asia/Kathmandu", 0.5), ("Asia/Dhaka", 1), ("Asia/Jakarta", 2), ("Asia/Singapore", 3),
    ("Asia/Manila", 2), ("Asia/Shanghai", 3), ("Asia/Tokyo", 2), ("Asia/Seoul", 1),
    ("Australia/Sydney", 3), ("Pacific/Auckland", 1),
]
TOPICS = [
    "python", "data-science", "machine-learning", "web-development", "frontend", "backend",
    "devops", "cloud", "security", "mobile", "product-management", "ux-design",
    "career-growth", "interview-prep", "leadership", "entrepreneurship", "public-speaking",
    "technical-writing", "finance", "marketing",
]
TIERS = [str(t) for t in range(1, 8)]
TIER_WEIGHTS = [0.22, 0.2, 0.17, 0.14, 0.11, 0.09, 0.07]
FIRST_NAMES = [
    "Amara", "Liam", "Sofia", "Kenji", "Priya", "Mateo", "Chloe", "Oluwaseun", "Noah",
    "Aisha", "Lucas", "Mei", "Arjun", "Elena", "Tomás", "Zara", "Ethan", "Fatima", "Hiroshi",
    "Isabela", "Jonas", "Keira", "Ravi", "Leila", "Mohammed", "Nadia", "Oscar", "Paula",
    "Quentin", "Rosa", "Samuel", "Tariq", "Uma", "Victor", "Wanjiru", "Xavier", "Yara",
    "Zhang Wei", "Anika", "Bruno", "Carmen", "Dmitri", "Emeka", "Freya", "Gabriel", "Hana",
    "Ines", "Jamal", "Kavya", "Lars", "Maya", "Nikhil", "Olga", "Pedro", "Sina", "Thabo",
]
LAST_NAMES = [
    "Okafor", "Smith", "Garcia", "Tanaka", "Sharma", "Rossi", "Martin", "Adeyemi", "Müller",
    "Khan", "Silva", "Chen", "Patel", "Ivanova", "Fernández", "Ahmed", "Johnson", "Haddad",
    "Sato", "Costa", "Schmidt", "O'Brien", "Iyer", "Nasser", "Mensah", "Kowalski", "Lopez",
    "Nguyen", "Dubois", "Kim", "Mwangi", "Andersson", "Yilmaz", "Santos", "Ng", "Banerjee",
    "Hughes", "Moreau", "Park", "Nakamura", "Eze", "Novak", "Reyes", "Lindqvist", "Das",
]
MISSIONS = [
    "Build a REST API", "Write unit tests", "Deploy to the cloud", "Design a data model",
    "Present your project", "Refactor a legacy module", "Ship a mobile screen",
    "Analyse a dataset", "Write a design doc", "Run a user interview", "Set up CI",
    "Secure an endpoint", "Optimise a slow query", "Write a blog post", "Pitch a product idea",
    "Mock technical interview", "Build a dashboard", "Contribute to open source",
    "Automate a workflow", "Train a classifier",
]
HABITS = ["daily coding", "reading", "journaling", "exercise", "language practice", "standup"]
GOALS = [
    "Finish the portfolio site", "Apply to five roles", "Complete the ML course",
    "Publish a technical article", "Run a mock interview", "Ship the capstone project",
]
AGENDAS = [
    "Review progress on the current mission", "Career planning", "Mock interview",
    "Code review walkthrough", "Goal setting for the month", "Portfolio feedback",
    "Unblock the capstone project", "Weekly check-in",
]
FLAG_CATEGORIES = ["engagement", "attendance", "wellbeing", "academic", "conduct"]
SEVERITIES = ["low", "medium", "high", "critical"]
PRIORITIES = ["low", "normal", "high", "urgent"]
EMAIL_DOMAIN = "example.org"

# Work-item mix for an assigned mentee (goal_feedback only for tiers that get it).
KIND_WEIGHTS = {"mission_review": 0.45, "session_followup": 0.25, "risk_assessment": 0.2,
                "goal_feedback": 0.1}
READINESS_POINTS = 4
UPCOMING_WEEKS = 2  # sessions are booked up to two weeks after the current one

# Tables in load order (foreign keys first). Reset truncates every table of the schema.
LOAD_ORDER = [
    "users", "assignments", "sessions", "session_feedback", "mission_submissions",
    "mission_reviews", "work_items", "flags", "readiness_history", "mentee_signals",
]


class DatabaseNotEmpty(RuntimeError):
    """Seeding writes into an empty database only (use reset to wipe it first)."""


@dataclass
class Table:
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)


@dataclass(frozen=True)
class DemoUser:
    id: uuid.UUID
    role: str
    email: str
    name: str


@dataclass
class SeedResult:
    counts: dict[str, int]
    generate_seconds: float
    load_seconds: float
    demo: dict[str, DemoUser]

    @property
    def total_seconds(self) -> float:
        return self.generate_seconds + self.load_seconds


def _uuids(rng: np.random.Generator, n: int) -> list[uuid.UUID]:
    """n deterministic version-4 UUIDs."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    data = raw.tobytes()
    return [uuid.UUID(bytes=data[i * 16:(i + 1) * 16]) for i in range(n)]


def _pick(rng: np.random.Generator, items: Sequence[str], k: int) -> list[str]:
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False))]


def _hours(h: float) -> timedelta:
    return timedelta(hours=float(h))


def _zone_offset_hours(zone: str, at: datetime) -> float:
    return ZoneInfo(zone).utcoffset(at.replace(tzinfo=None)).total_seconds() / 3600


def _zone_distance(a: float, b: float) -> float:
    d = abs(a - b) % 24
    return min(d, 24 - d)


class _Generator:
    """Builds every table in memory. Each table draws from its own child generator."""

    def __init__(self, settings: Settings, *, mentors: int, mentees: int, seed: int,
                 work_items_per_mentee: int, sessions_per_mentor: int,
                 assigned_fraction: float, now: datetime) -> None:
        self.settings = settings
        self.n_mentors = mentors
        self.n_mentees = mentees
        self.seed = seed
        self.items_per_mentee = work_items_per_mentee
        self.sessions_per_mentor = sessions_per_mentor
        self.assigned_fraction = assigned_fraction
        self.now = now
        self.tables: dict[str, Table] = {}
        self.demo: dict[str, DemoUser] = {}

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream])

    def table(self, name: str, columns: Sequence[str]) -> Table:
        self.tables[name] = Table(tuple(columns))
        return self.tables[name]

    def run(self) -> dict[str, Table]:
        self.users()
        self.assignments()
        self.sessions()
        self.work_items()
        self.flags()
        self.readiness()
        return {name: self.tables[name] for name in LOAD_ORDER}

    # --- users ------------------------------------------------------------------------------

    def users(self) -> None:
        rng = self.rng(1)
        zones = [z for z, _ in ZONES]
        weights = np.array([w for _, w in ZONES])
        weights /= weights.sum()
        n = self.n_mentors + self.n_mentees
        ids = _uuids(rng, n + 3)
        first = rng.integers(0, len(FIRST_NAMES), size=n + 3)
        last = rng.integers(0, len(LAST_NAMES), size=n + 3)
        zone_idx = rng.choice(len(zones), size=n, p=weights)
        self.zone_offsets = {z: _zone_offset_hours(z, self.now) for z in zones}

        users = self.table("users", (
            "id", "email", "name", "role", "timezone", "tier", "interests", "is_mentor",
            "mentor_capacity_weekly", "mentor_max_mentees", "mentor_specialties",
            "mentor_availability", "created_at", "updated_at"))

        def name(i: int) -> str:
            return f"{FIRST_NAMES[first[i]]} {LAST_NAMES[last[i]]}"

        staff = [("director", "Dana Director"), ("admin", "Alex Admin"),
                 ("service", "Student Platform")]
        for k, (role, full_name) in enumerate(staff):
            uid = ids[n + k]
            created = self.now - timedelta(days=730)
            email = f"{role}@{EMAIL_DOMAIN}"
            users.rows.append((uid, email, full_name, role, "Europe/London", None, [], False,
                               10, 20, [], json.dumps({"timezone": "UTC", "windows": []}),
                               created, created))
            self.demo[role] = DemoUser(uid, role, email, full_name)
        self.director_id = self.demo["director"].id

        # Mentors: capacity around the default 10 slots, up to 20 mentees.
        capacity = rng.choice([6, 8, 10, 10, 10, 12, 15], size=self.n_mentors)
        max_mentees = rng.choice([12, 15, 18, 20, 20, 20], size=self.n_mentors)
        n_specialties = rng.integers(2, 6, size=self.n_mentors)
        mentor_age_days = rng.uniform(200, 900, size=self.n_mentors)
        self.mentors: list[dict] = []
        for i in range(self.n_mentors):
            zone = zones[zone_idx[i]]
            windows = self._windows(rng, int(capacity[i]))
            created = self.now - timedelta(days=float(mentor_age_days[i]))
            mentor = {
                "id": ids[i], "zone": zone, "capacity": int(capacity[i]),
                "max": int(max_mentees[i]), "windows": windows,
                "specialties": _pick(rng, TOPICS, int(n_specialties[i])),
                "name": name(i), "email": f"mentor{i + 1:04d}@{EMAIL_DOMAIN}",
                "created_at": created,
            }
            self.mentors.append(mentor)
            availability = {"timezone": zone, "windows": [
                {"weekday": d, "start": f"{s:02d}:00", "end": f"{e:02d}:00"}
                for d, s, e in windows]}
            users.rows.append((
                mentor["id"], mentor["email"], mentor["name"], "mentor", zone, None, [], True,
                mentor["capacity"], mentor["max"], mentor["specialties"],
                json.dumps(availability), created, created))

        # Mentees: rows are appended once assignments fix their creation dates.
        tiers = rng.choice(TIERS, size=self.n_mentees, p=TIER_WEIGHTS)
        n_interests = rng.integers(1, 5, size=self.n_mentees)
        self.mentees: list[dict] = []
        for j in range(self.n_mentees):
            i = self.n_mentors + j
            self.mentees.append({
                "id": ids[i], "zone": zones[zone_idx[i]], "tier": str(tiers[j]),
                "interests": _pick(rng, TOPICS, int(n_interests[j])), "name": name(i),
                "email": f"mentee{j + 1:05d}@{EMAIL_DOMAIN}",
            })

    @staticmethod
    def _windows(rng: np.random.Generator, capacity: int) -> list[tuple[int, int, int]]:
        """Weekly windows (weekday, start hour, end hour), local time, with at least
        capacity + 2 whole-hour slots so a full week fits without overlaps."""
        days = sorted(rng.choice(7, size=int(rng.integers(3, 6)), replace=False,
                                 p=[0.17, 0.17, 0.17, 0.17, 0.17, 0.09, 0.06]))
        windows: list[tuple[int, int, int]] = []
        for d in days:
            start = int(rng.integers(7, 18))
            windows.append((int(d), start, min(21, start + int(rng.integers(2, 5)))))
        slots = sum(e - s for _, s, e in windows)
        k = 0
        while slots < capacity + 2:  # widen windows until the week can hold the capacity
            d, s, e = windows[k % len(windows)]
            if e < 21:
                windows[k % len(windows)] = (d, s, e + 1)
                slots += 1
            elif s > 7:
                windows[k % len(windows)] = (d, s - 1, e)
                slots += 1
            k += 1
        return windows

    # --- assignments ------------------------------------------------------------------------

    def _fit(self, mentor: dict, mentee: dict) -> tuple[float, list[str]]:
        shared = sorted(set(mentor["specialties"]) & set(mentee["interests"]))
        distance = _zone_distance(self.zone_offsets[mentor["zone"]],
                                  self.zone_offsets[mentee["zone"]])
        score = 0.6 * len(shared) / max(1, len(mentee["interests"])) + 0.4 * (1 - distance / 12)
        reasons = [f"shared interests: {', '.join(shared)}"] if shared else []
        reasons.append(f"time zones {distance:g} h apart")
        return round(score, 4), reasons

    def assignments(self) -> None:
        rng = self.rng(2)
        n_assigned = min(int(round(self.n_mentees * self.assigned_fraction)),
                         sum(m["max"] for m in self.mentors))
        order = rng.permutation(self.n_mentees)
        assigned, unassigned = order[:n_assigned], order[n_assigned:]
        remaining = [m["max"] for m in self.mentors]
        open_mentors = list(range(self.n_mentors))
        self.mentor_of: dict[int, int] = {}
        candidates = rng.integers(0, 1 << 30, size=(n_assigned, 8))
        for pos, j in enumerate(assigned):
            j = int(j)
            if pos < self.n_mentors and remaining[pos] > 0:
                best = pos  # every mentor gets at least one mentee
            else:
                # The best fit among a few mentors with room: plausible, not optimal (the
                # matcher's job is to do better).
                picks = {open_mentors[c % len(open_mentors)] for c in candidates[pos]}
                best = max(sorted(picks),
                           key=lambda i: self._fit(self.mentors[i], self.mentees[j])[0])
            self.mentor_of[j] = best
            remaining[best] -= 1
            if remaining[best] == 0:
                open_mentors.remove(best)

        rows = self.table("assignments", (
            "id", "mentee_id", "mentor_id", "source", "score", "reasons", "assigned_by",
            "started_at", "ended_at", "end_reason"))
        ids = _uuids(rng, 2 * self.n_mentees)
        # A mentor's sessions start `history_weeks` ago: mentees are assigned before that.
        self.history_weeks = [
            max(1, math.ceil(self.sessions_per_mentor / self._per_week(m)))
            for m in self.mentors
        ]
        lead_days = rng.uniform(1, 120, size=self.n_mentees)
        signup_days = rng.uniform(0, 21, size=self.n_mentees)
        manual = rng.random(self.n_mentees) < 0.3
        history = rng.random(self.n_mentees) < 0.05
        other = rng.integers(0, max(1, self.n_mentors - 1), size=self.n_mentees)
        history_days = rng.uniform(20, 200, size=self.n_mentees)
        self.assigned_at: dict[int, datetime] = {}
        for j in sorted(self.mentor_of):
            i = self.mentor_of[j]
            mentor, mentee = self.mentors[i], self.mentees[j]
            started = (self.now - timedelta(weeks=self.history_weeks[i] + 1)
                       - timedelta(days=float(lead_days[j])))
            self.assigned_at[j] = started
            created = started - timedelta(days=float(signup_days[j]))
            score, reasons = self._fit(mentor, mentee)
            if history[j] and self.n_mentors > 1:
                previous = int(other[j]) + (int(other[j]) >= i)  # any other mentor
                before = started - timedelta(days=float(history_days[j]))
                created = before - timedelta(days=float(signup_days[j]))
                rows.rows.append((ids[self.n_mentees + j], mentee["id"],
                                  self.mentors[previous]["id"], "auto", None, [], None,
                                  before, started, "reassigned"))
            rows.rows.append((ids[j], mentee["id"], mentor["id"],
                              "manual" if manual[j] else "auto", score, reasons,
                              self.director_id if manual[j] else None, started, None, None))
            mentee["created_at"] = created
        # Unassigned mentees are recent sign-ups, waiting for the matcher.
        for j in unassigned:
            self.mentees[int(j)]["created_at"] = self.now - timedelta(
                days=float(3 + signup_days[int(j)] / 2))

        users = self.tables["users"]
        for m in self.mentees:
            users.rows.append((
                m["id"], m["email"], m["name"], "mentee", m["zone"], m["tier"], m["interests"],
                False, 10, 20, [], json.dumps({"timezone": m["zone"], "windows": []}),
                m["created_at"], m["created_at"]))
        by_mentor: dict[int, list[int]] = {}
        for j, i in sorted(self.mentor_of.items()):
            by_mentor.setdefault(i, []).append(j)
        self.mentees_of = by_mentor
        if self.mentors and by_mentor:
            i = min(by_mentor)
            mentor = self.mentors[i]
            mentee = self.mentees[by_mentor[i][0]]
            self.demo["mentor"] = DemoUser(mentor["id"], "mentor", mentor["email"],
                                           mentor["name"])
            self.demo["mentee"] = DemoUser(mentee["id"], "mentee", mentee["email"],
                                           mentee["name"])

    def _per_week(self, mentor: dict) -> int:
        """Sessions booked per week: about 70 % of the weekly capacity."""
        return max(1, min(mentor["capacity"], round(mentor["capacity"] * 0.7)))

    # --- sessions ---------------------------------------------------------------------------

    def sessions(self) -> None:
        rng = self.rng(3)
        rows = self.table("sessions", (
            "id", "mentor_id", "mentee_id", "starts_at", "ends_at", "duration_minutes",
            "status", "meeting_url", "agenda", "mentor_notes", "cancel_reason", "sequence",
            "created_at", "updated_at"))
        feedback = self.table("session_feedback", (
            "id", "session_id", "mentor_id", "mentee_id", "rating", "comment", "created_at"))
        total = sum(self.sessions_per_mentor for i in range(self.n_mentors)
                    if i in self.mentees_of)
        ids = _uuids(rng, total)
        feedback_ids = _uuids(rng, total)
        u = rng.random((total, 4))
        durations = rng.choice([30, 45, 60], size=total, p=[0.2, 0.3, 0.5])
        agenda = rng.integers(0, len(AGENDAS), size=total)
        ratings = rng.choice([1, 2, 3, 4, 5], size=total, p=[0.02, 0.04, 0.1, 0.35, 0.49])
        base = self.settings.video_base_url.rstrip("/")
        self.completed_by_mentee: dict[int, list[tuple[uuid.UUID, datetime]]] = {}
        k = 0
        for i, mentor in enumerate(self.mentors):
            mentees = self.mentees_of.get(i)
            if not mentees:
                continue
            zone = ZoneInfo(mentor["zone"])
            slots = [(d, h) for d, s, e in mentor["windows"] for h in range(s, e)]
            per_week = self._per_week(mentor)
            weeks = self.history_weeks[i]
            upcoming = min(UPCOMING_WEEKS, weeks - 1)
            local_today = self.now.astimezone(zone).date()
            this_monday = local_today - timedelta(days=local_today.weekday())
            left = self.sessions_per_mentor
            rotation = [mentees[x] for x in rng.permutation(len(mentees))]
            for w in range(upcoming, upcoming - weeks, -1):  # newest week first
                count = min(per_week, left)
                left -= count
                monday = this_monday + timedelta(weeks=w)
                for slot in sorted(rng.choice(len(slots), size=count, replace=False)):
                    weekday, hour = slots[slot]
                    day: date = monday + timedelta(days=weekday)
                    starts = datetime(day.year, day.month, day.day, hour,
                                      tzinfo=zone).astimezone(UTC)
                    minutes = int(durations[k])
                    ends = starts + timedelta(minutes=minutes)
                    j = rotation[k % len(rotation)]
                    mentee = self.mentees[j]
                    booked = min(self.now, max(self.assigned_at[j],
                                               starts - timedelta(days=1 + 13 * u[k, 1])))
                    notes = reason = None
                    sequence = 0
                    updated = booked
                    if ends <= self.now:
                        r = u[k, 0]
                        status = "completed" if r < 0.85 else "no_show" if r < 0.93 else "cancelled"
                    else:
                        status = "cancelled" if u[k, 0] < 0.06 else "scheduled"
                    if status == "completed":
                        notes = "Good progress; next steps agreed."
                        updated = ends
                        self.completed_by_mentee.setdefault(j, []).append((ids[k], ends))
                        if u[k, 2] < 0.6:
                            feedback.rows.append((
                                feedback_ids[k], ids[k], mentor["id"], mentee["id"],
                                int(ratings[k]), "Very helpful" if ratings[k] >= 4 else None,
                                min(self.now, ends + _hours(1 + 47 * u[k, 3]))))
                    elif status == "no_show":
                        updated = ends
                    elif status == "cancelled":
                        reason = "Schedule conflict"
                        sequence = 1
                        updated = min(self.now, starts - _hours(2))
                        updated = max(updated, booked)
                    rows.rows.append((
                        ids[k], mentor["id"], mentee["id"], starts, ends, minutes, status,
                        f"{base}/mentorship-{ids[k].hex[:16]}", AGENDAS[agenda[k]], notes,
                        reason, sequence, booked, updated))
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
        ids = _uuids(rng, total)
        cause_ids = _uuids(rng, total)  # submission / event ids
        extra_ids = _uuids(rng, total)  # review / signal row ids
        mission_ids = _uuids(rng, len(MISSIONS))
        u = rng.random((total, 6))
        kind_draw = rng.choice(list(KIND_WEIGHTS), size=total, p=list(KIND_WEIGHTS.values()))
        ages_days = rng.exponential(15, size=total)
        response_hours = rng.lognormal(math.log(8), 0.7, size=total)
        picks = rng.integers(0, 1 << 30, size=(total, 2))
        goal_tiers = set(self.settings.goal_feedback_tiers)
        policies = {kind: self.settings.sla(kind) for kind in KIND_WEIGHTS}
        k = 0
        for j, mentee in enumerate(self.mentees):
            mentor_index = self.mentor_of.get(j)
            mentor_id = self.mentors[mentor_index]["id"] if mentor_index is not None else None
            followups = list(self.completed_by_mentee.get(j, []))
            if mentor_id is not None:
                oldest = self.now - self.assigned_at[j]
            else:  # waiting for a mentor: recent items only, nobody works them yet
                oldest = min(timedelta(hours=52), self.now - mentee["created_at"])
            for _ in range(self.items_per_mentee):
                kind = str(kind_draw[k])
                if kind == "session_followup" and not followups:
                    kind = "mission_review"
                if kind == "goal_feedback" and mentee["tier"] not in goal_tiers:
                    kind = "risk_assessment"
                policy = policies[kind]
                window = timedelta(hours=policy.hours)
                if kind == "session_followup":
                    session_id, created = followups.pop(int(picks[k, 0]) % len(followups))
                else:
                    age = timedelta(days=float(ages_days[k]))
                    if mentor_id is None:
                        age = oldest * float(u[k, 0])
                    created = self.now - min(age, oldest * 0.98)
                created = created.replace(microsecond=0)
                due = created + window
                age_h = (self.now - created).total_seconds() / 3600
                if mentor_id is None:
                    status = "open"
                elif age_h > policy.hours:
                    status = "done" if u[k, 1] < 0.985 else "in_progress" if u[k, 2] < 0.3 \
                        else "open"
                else:
                    done_p = 0.85 * age_h / policy.hours
                    status = "done" if u[k, 1] < done_p else "in_progress" if u[k, 2] < 0.3 \
                        else "open"
                completed = started = completed_by = None
                if status == "done":
                    completed = created + _hours(min(float(response_hours[k]), age_h * 0.95))
                    started = created + (completed - created) * 0.5
                    completed_by = mentor_id
                elif status == "in_progress":
                    started = created + (self.now - created) * float(u[k, 3])
                end = completed or self.now
                priority = policy.priority
                escalated = None
                if end - created >= window * 0.75:  # the prioritizer raises it once
                    escalated = created + window * 0.75
                    priority = PRIORITIES[min(3, PRIORITIES.index(priority) + 1)]
                overdue = status != "done" and due < self.now
                cause = cause_ids[k]
                if kind == "mission_review":
                    m = int(picks[k, 1]) % len(MISSIONS)
                    title = f"Review mission: {MISSIONS[m]}"
                    source = f"mission.submitted:{cause}"
                    details = {"submission_id": str(cause), "mission_id": str(mission_ids[m])}
                    decision = None
                    if status == "done":
                        r = u[k, 4]
                        decision = ("approved" if r < 0.7 else
                                    "changes_requested" if r < 0.92 else "rejected")
                    submissions.rows.append((
                        cause, mentee["id"], mission_ids[m], MISSIONS[m],
                        f"https://portfolio.{EMAIL_DOMAIN}/submissions/{cause}", created,
                        decision or "pending", created))
                    if decision:
                        score = int(60 + 40 * u[k, 5]) if decision == "approved" else \
                            int(30 + 40 * u[k, 5])
                        reviews.rows.append((
                            extra_ids[k], cause, mentee["id"], mentor_id, decision,
                            "Solid work." if decision == "approved" else "See comments.",
                            score, completed))
                elif kind == "session_followup":
                    title = f"Follow up on the session of {created:%Y-%m-%d}"
                    source = f"session.completed:{session_id}"
                    details = {"session_id": str(session_id)}
                elif kind == "risk_assessment":
                    habit = HABITS[int(picks[k, 1]) % len(HABITS)]
                    streak = 3 + int(picks[k, 1]) % 40
                    title = f"Habit streak broken: {habit} ({streak} days)"
                    source = f"habit.streak_broken:{cause}"
                    details = {"habit": habit, "streak_days": streak}
                    signals.rows.append((extra_ids[k], mentee["id"], "habit_streak_broken",
                                         json.dumps(details), created, cause, created))
                else:  # goal_feedback
                    goal = GOALS[int(picks[k, 1]) % len(GOALS)]
                    goal_due = created - timedelta(days=1)
                    title = f"Goal overdue: {goal}"
                    source = f"goal.overdue:{cause}"
                    details = {"goal_id": str(cause), "title": goal,
                               "due_at": goal_due.isoformat()}
                    signals.rows.append((extra_ids[k], mentee["id"], "goal_overdue",
                                         json.dumps(details), created, cause, created))
                updated = completed or started or created
                items.rows.append((
                    ids[k], kind, priority, status, mentee["id"], source, title,
                    json.dumps(details), due, overdue, escalated, None, created, updated,
                    started, completed, completed_by))
                k += 1

    # --- flags and readiness ---------------------------------------------------------------

    def flags(self) -> None:
        rng = self.rng(5)
        rows = self.table("flags", (
            "id", "mentee_id", "raised_by", "severity", "category", "note", "status",
            "resolution", "resolved_by", "resolved_at", "created_at"))
        assigned = sorted(self.mentor_of)
        ids = _uuids(rng, len(assigned))
        u = rng.random((len(assigned), 4))
        severity = rng.choice(SEVERITIES, size=len(assigned), p=[0.3, 0.4, 0.2, 0.1])
        category = rng.integers(0, len(FLAG_CATEGORIES), size=len(assigned))
        for n, j in enumerate(assigned):
            if u[n, 0] >= 0.07:
                continue
            mentor_id = self.mentors[self.mentor_of[j]]["id"]
            created = max(self.assigned_at[j], self.now - timedelta(days=30 * float(u[n, 1])))
            resolved = u[n, 2] < 0.45
            resolved_at = created + (self.now - created) * float(u[n, 3]) if resolved else None
            rows.rows.append((
                ids[n], self.mentees[j]["id"], mentor_id, str(severity[n]),
                FLAG_CATEGORIES[category[n]], "Private note for the mentor and directors.",
                "resolved" if resolved else "open",
                "Talked it through; back on track." if resolved else None,
                mentor_id if resolved else None, resolved_at, created))

    def readiness(self) -> None:
        rng = self.rng(6)
        rows = self.table("readiness_history", (
            "id", "mentee_id", "score", "previous_score", "recorded_at", "event_id"))
        n = self.n_mentees * READINESS_POINTS
        ids = _uuids(rng, n)
        event_ids = _uuids(rng, n)
        start = rng.uniform(35, 80, size=self.n_mentees)
        steps = rng.normal(1.5, 4, size=(self.n_mentees, READINESS_POINTS))
        drop = rng.random(self.n_mentees) < 0.08
        drop_size = rng.uniform(10, 20, size=self.n_mentees)
        offsets = np.sort(rng.random((self.n_mentees, READINESS_POINTS)), axis=1)
        k = 0
        for j, mentee in enumerate(self.mentees):
            span = min(timedelta(days=60), (self.now - mentee["created_at"]) * 0.95)
            dropping = bool(drop[j]) and span >= timedelta(days=20)
            if dropping:  # a sharp drop within the last 14 days: a risk reason
                early = span - timedelta(days=9)
                times = [self.now - span + early * float(o) for o in offsets[j][:-2]]
                times += [self.now - timedelta(days=8), self.now - timedelta(days=1)]
            else:
                times = [self.now - span * (1 - float(o)) for o in offsets[j]]
            score = float(start[j])
            previous = None
            for p in range(READINESS_POINTS):
                if p:
                    score += -float(drop_size[j]) if dropping and p == READINESS_POINTS - 1 \
                        else float(steps[j, p])
                score = round(min(100.0, max(0.0, score)), 1)
                rows.rows.append((ids[k], mentee["id"], score, previous,
                                  times[p].replace(microsecond=0), event_ids[k]))
                previous = score
                k += 1


def generate(settings: Settings, *, mentors: int, mentees: int, seed: int,
             work_items_per_mentee: int, sessions_per_mentor: int,
             assigned_fraction: float = 0.85,
             now: datetime) -> tuple[dict[str, Table], dict[str, DemoUser]]:
    """All rows, in memory, in load order. Pure: same arguments, same rows."""
    generator = _Generator(
        settings, mentors=mentors, mentees=mentees, seed=seed,
        work_items_per_mentee=work_items_per_mentee, sessions_per_mentor=sessions_per_mentor,
        assigned_fraction=assigned_fraction, now=now)
    return generator.run(), generator.demo


# --- loading ---------------------------------------------------------------------------------

def plain_dsn(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://...`) as a libpq/asyncpg DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def reset_database(settings: Settings) -> None:
    """Empty every table of the schema. TRUNCATE needs the migration account (the owner):
    the workers' role may only write rows."""
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    connection = await asyncpg.connect(plain_dsn(settings.database_url))
    try:
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


async def is_empty(connection: asyncpg.Connection) -> bool:
    return not await connection.fetchval("select exists(select 1 from users)")


async def seed(settings: Settings, *, mentors: int = 20, mentees: int = 300, seed: int = 1,
               work_items_per_mentee: int = 10, sessions_per_mentor: int = 100,
               assigned_fraction: float = 0.85, now: datetime | None = None,
               reset: bool = False, analyze: bool = True) -> SeedResult:
    """Generate and load a programme into an empty database (or, with `reset`, one wiped
    first). Raises DatabaseNotEmpty when users exist and `reset` is false."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    if reset:
        await reset_database(settings)
    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        if not await is_empty(connection):
            raise DatabaseNotEmpty(
                "The database already has users; seed writes into an empty database "
                "(use --reset to wipe it first).")
        started = time.perf_counter()
        tables, demo = generate(
            settings, mentors=mentors, mentees=mentees, seed=seed,
            work_items_per_mentee=work_items_per_mentee,
            sessions_per_mentor=sessions_per_mentor, assigned_fraction=assigned_fraction,
            now=now)
        generated = time.perf_counter()
        async with connection.transaction():
            for name, table in tables.items():
                if table.rows:
                    await connection.copy_records_to_table(
                        name, records=table.rows, columns=table.columns)
        loaded = time.perf_counter()
    finally:
        await connection.close()
    if analyze:
        await _analyze(settings, list(tables))
    return SeedResult(
        counts={name: len(table.rows) for name, table in tables.items()},
        generate_seconds=generated - started,
        load_seconds=time.perf_counter() - generated if analyze else loaded - generated,
        demo=demo,
    )


async def _analyze(settings: Settings, names: list[str]) -> None:
    """Fresh planner statistics after a bulk load (ANALYZE needs the tables' owner)."""
    connection = await asyncpg.connect(plain_dsn(settings.database_url))
    try:
        await connection.execute(f"ANALYZE {', '.join(names)}")
    finally:
        await connection.close()


async def demo_users(settings: Settings) -> dict[str, DemoUser]:
    """One user per role to hand out tokens for: for mentor and mentee an actively assigned
    pair (the first mentor by email), else the first user of the role by email."""
    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        found: dict[str, DemoUser] = {}
        pair = await connection.fetchrow("""
            select m.id as mentor_id, m.email as mentor_email, m.name as mentor_name,
                   e.id as mentee_id, e.email as mentee_email, e.name as mentee_name
              from assignments a join users m on m.id = a.mentor_id
              join users e on e.id = a.mentee_id
             where a.ended_at is null order by m.email, e.email limit 1""")
        if pair:
            found["mentor"] = DemoUser(pair["mentor_id"], "mentor", pair["mentor_email"],
                                       pair["mentor_name"])
            found["mentee"] = DemoUser(pair["mentee_id"], "mentee", pair["mentee_email"],
                                       pair["mentee_name"])
        for role in ("mentor", "mentee", "director", "admin", "service"):
            if role in found:
                continue
            row = await connection.fetchrow(
                "select id, email, name from users where role = $1 order by email limit 1", role)
            if row:
                found[role] = DemoUser(row["id"], role, row["email"], row["name"])
        return found
    finally:
        await connection.close()


async def user_by_email(settings: Settings, email: str) -> DemoUser | None:
    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        row = await connection.fetchrow(
            "select id, role, email, name from users where lower(email) = lower($1)", email)
        return DemoUser(row["id"], row["role"], row["email"], row["name"]) if row else None
    finally:
        await connection.close()
