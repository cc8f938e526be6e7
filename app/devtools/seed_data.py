"""The seed programme's rows, generated in memory (see app/devtools/seed.py for loading).

Pure and deterministic: same arguments (seed and reference time included), same rows, ids
included. Each table draws from its own child generator, so changing one table's recipe
does not shift the others. Hot loops read plain Python lists (not numpy scalars), ids are
canonical UUID strings and JSON is formatted from pre-encoded pieces: the 1K x 20K
programme (~700K rows) is generated in a few seconds.

What the data respects:
- mentors: IANA zones around the world, weekly availability windows in their own zone,
  specialties, weekly capacity and a maximum of mentees; mentees: zones, interests, tiers
  "1".."7";
- assignments: one active per mentee, never more than `mentor_max_mentees` per mentor,
  every mentor with at least one mentee (when there are enough), the rest of the mentees
  left unassigned for the matcher; a few ended assignments as history;
- sessions: only with the mentee's current mentor, on whole-hour slots inside the mentor's
  windows (local time, DST-aware), distinct slots so nothing overlaps for a mentor or a
  mentee, at most `mentor_capacity_weekly` live sessions in any ISO week of the mentor's
  zone (about 70 % of it); past ones completed / no-show / cancelled, upcoming ones
  scheduled; feedback on most completed ones;
- work items of every kind with their SLA due dates (some overdue, escalated once 75 % of
  the window passed), each with its cause: mission submissions (reviews of the decided
  ones), habit and goal signals, completed sessions; flags; readiness history with some
  sharp recent drops.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from app.config import Settings
from app.services.relationships import reasons as why

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
STAFF = [("director", "Dana Director"), ("admin", "Alex Admin"),
         ("service", "Student Platform")]

# Work-item mix (session follow-ups need a completed session, goal feedback a tier that
# gets it; otherwise the item becomes a mission review / risk assessment).
KINDS = ["mission_review", "session_followup", "risk_assessment", "goal_feedback"]
KIND_WEIGHTS = [0.45, 0.25, 0.2, 0.1]
READINESS_POINTS = 4
UPCOMING_WEEKS = 2  # sessions are booked up to two weeks after the current one
LOAD_SHARE = 0.7  # sessions booked per week / weekly capacity
UNASSIGNED_ITEM_HOURS = 52  # items of mentees waiting for a mentor are this recent at most

# Tables in load order (foreign keys first).
LOAD_ORDER = [
    "users", "assignments", "sessions", "session_feedback", "mission_submissions",
    "mission_reviews", "work_items", "flags", "readiness_history", "mentee_signals",
]

_MISSIONS_JSON = [json.dumps(m) for m in MISSIONS]
_HABITS_JSON = [json.dumps(h) for h in HABITS]
_GOALS_JSON = [json.dumps(g) for g in GOALS]


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


def uuids(rng: np.random.Generator, n: int) -> list[str]:
    """n deterministic version-4 UUIDs, as canonical strings (asyncpg encodes them fast)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    h = raw.tobytes().hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-"
            f"{h[i + 20:i + 32]}" for i in range(0, 32 * n, 32)]


def picks(rng: np.random.Generator, items: Sequence[str], counts: np.ndarray) -> list[list[str]]:
    """For each count k, k distinct items (in vocabulary order)."""
    order = np.argsort(rng.random((len(counts), len(items))), axis=1).tolist()
    return [[items[i] for i in sorted(row[:k])] for row, k in zip(order, counts.tolist(),
                                                                   strict=True)]


def zone_distance(a: float, b: float) -> float:
    d = abs(a - b) % 24
    return min(d, 24 - d)


class Generator:
    """Builds every table in memory, in load order."""

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
        self.stream(lambda name, table: None)
        return {name: self.tables[name] for name in LOAD_ORDER}

    def stream(self, emit: Callable[[str, Table], None]) -> None:
        """Build the tables, handing each to `emit` as soon as it is complete, in load order
        (so loading can start while the rest is generated)."""
        steps = [(self.assignments, ["users", "assignments"]),
                 (self.sessions, ["sessions", "session_feedback"]),
                 (self.work_items, ["mission_submissions", "mission_reviews", "work_items"]),
                 (self.flags, ["flags"]),
                 (self.readiness, ["readiness_history", "mentee_signals"])]
        self.users()
        for build, ready in steps:
            build()
            for name in ready:
                emit(name, self.tables[name])

    # --- users ------------------------------------------------------------------------------

    def users(self) -> None:
        rng = self.rng(1)
        zones = [z for z, _ in ZONES]
        weights = np.array([w for _, w in ZONES])
        n = self.n_mentors + self.n_mentees
        ids = uuids(rng, n + len(STAFF))
        first = rng.integers(0, len(FIRST_NAMES), size=n).tolist()
        last = rng.integers(0, len(LAST_NAMES), size=n).tolist()
        zone_of = [zones[z] for z in rng.choice(len(zones), size=n,
                                                 p=weights / weights.sum()).tolist()]
        naive_now = self.now.replace(tzinfo=None)
        self.zone_offsets = {z: ZoneInfo(z).utcoffset(naive_now).total_seconds() / 3600
                             for z in zones}
        users = self.table("users", (
            "id", "email", "name", "role", "timezone", "tier", "interests", "is_mentor",
            "mentor_capacity_weekly", "mentor_max_mentees", "mentor_specialties",
            "mentor_availability", "created_at", "updated_at"))

        created = self.now - timedelta(days=730)
        for k, (role, full_name) in enumerate(STAFF):
            uid, email = ids[n + k], f"{role}@{EMAIL_DOMAIN}"
            users.rows.append((uid, email, full_name, role, "Europe/London", None, [], False,
                               10, 20, [], '{"timezone": "UTC", "windows": []}',
                               created, created))
            self.demo[role] = DemoUser(uuid.UUID(uid), role, email, full_name)
        self.director_id = ids[n]

        # Mentors: capacity around the default 10 slots, up to 20 mentees.
        capacity = rng.choice([6, 8, 10, 10, 10, 12, 15], size=self.n_mentors).tolist()
        max_mentees = rng.choice([12, 15, 18, 20, 20, 20], size=self.n_mentors).tolist()
        specialties = picks(rng, TOPICS, rng.integers(2, 6, size=self.n_mentors))
        age_days = rng.uniform(200, 900, size=self.n_mentors).tolist()
        self.mentors: list[dict] = []
        for i in range(self.n_mentors):
            zone = zone_of[i]
            windows = self._windows(rng, capacity[i])
            created = self.now - timedelta(days=age_days[i])
            mentor = {
                "id": ids[i], "zone": zone, "capacity": capacity[i], "max": max_mentees[i],
                "windows": windows, "specialties": specialties[i],
                "topics": set(specialties[i]), "offset": self.zone_offsets[zone],
                "name": f"{FIRST_NAMES[first[i]]} {LAST_NAMES[last[i]]}",
                "email": f"mentor{i + 1:04d}@{EMAIL_DOMAIN}",
            }
            self.mentors.append(mentor)
            availability = json.dumps({"timezone": zone, "windows": [
                {"weekday": d, "start": f"{s:02d}:00", "end": f"{e:02d}:00"}
                for d, s, e in windows]})
            users.rows.append((
                mentor["id"], mentor["email"], mentor["name"], "mentor", zone, None, [], True,
                mentor["capacity"], mentor["max"], mentor["specialties"], availability,
                created, created))

        # Mentees: their rows are written once assignments fix their sign-up dates.
        tiers = rng.choice(TIERS, size=self.n_mentees, p=TIER_WEIGHTS).tolist()
        interests = picks(rng, TOPICS, rng.integers(1, 5, size=self.n_mentees))
        self.mentees: list[dict] = []
        for j in range(self.n_mentees):
            i = self.n_mentors + j
            self.mentees.append({
                "id": ids[i], "zone": zone_of[i], "tier": tiers[j], "interests": interests[j],
                "topics": set(interests[j]), "offset": self.zone_offsets[zone_of[i]],
                "name": f"{FIRST_NAMES[first[i]]} {LAST_NAMES[last[i]]}",
                "email": f"mentee{j + 1:05d}@{EMAIL_DOMAIN}",
            })

    @staticmethod
    def _windows(rng: np.random.Generator, capacity: int) -> list[tuple[int, int, int]]:
        """Weekly windows (weekday, start hour, end hour), local time, with at least
        capacity + 2 whole-hour slots so a full week fits without overlaps."""
        days = sorted(rng.choice(7, size=int(rng.integers(3, 6)), replace=False,
                                 p=[0.17, 0.17, 0.17, 0.17, 0.17, 0.09, 0.06]).tolist())
        starts = rng.integers(7, 18, size=len(days)).tolist()
        lengths = rng.integers(2, 5, size=len(days)).tolist()
        windows = [(d, s, min(21, s + n)) for d, s, n in zip(days, starts, lengths, strict=True)]
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

    def fit(self, mentor: dict, mentee: dict) -> tuple[float, list[str]]:
        shared = sorted(mentor["topics"] & mentee["topics"])
        distance = zone_distance(mentor["offset"], mentee["offset"])
        score = 0.6 * len(shared) / max(1, len(mentee["interests"])) + 0.4 * (1 - distance / 12)
        reasons = [why.specialty(shared)] if shared else []  # the matcher's format
        reasons.append(why.timezone(distance))
        return round(score, 4), reasons

    def _score(self, mentor: dict, mentee: dict) -> float:
        distance = zone_distance(mentor["offset"], mentee["offset"])
        return (0.6 * len(mentor["topics"] & mentee["topics"]) / max(1, len(mentee["topics"]))
                + 0.4 * (1 - distance / 12))

    def assignments(self) -> None:
        rng = self.rng(2)
        n_assigned = min(round(self.n_mentees * self.assigned_fraction),
                         sum(m["max"] for m in self.mentors))
        order = rng.permutation(self.n_mentees).tolist()
        assigned, unassigned = order[:n_assigned], order[n_assigned:]
        remaining = [m["max"] for m in self.mentors]
        open_mentors = list(range(self.n_mentors))
        self.mentor_of: dict[int, int] = {}
        candidates = rng.integers(0, 1 << 30, size=(n_assigned, 8)).tolist()
        for pos, j in enumerate(assigned):
            if pos < self.n_mentors:
                best = pos  # every mentor gets at least one mentee
            else:
                # The best fit among a few mentors with room: plausible, not optimal (doing
                # better is the matcher's job).
                mentee = self.mentees[j]
                options = sorted({open_mentors[c % len(open_mentors)] for c in candidates[pos]})
                best = max(options, key=lambda i: self._score(self.mentors[i], mentee))
            self.mentor_of[j] = best
            remaining[best] -= 1
            if remaining[best] == 0:
                open_mentors.remove(best)

        # A mentor's sessions go back `history_weeks`: their mentees were assigned before.
        self.history_weeks = [max(1, math.ceil(self.sessions_per_mentor / self._per_week(m)))
                              for m in self.mentors]
        rows = self.table("assignments", (
            "id", "mentee_id", "mentor_id", "source", "score", "reasons", "assigned_by",
            "started_at", "ended_at", "end_reason"))
        ids = uuids(rng, 2 * self.n_mentees)
        lead_days = rng.uniform(1, 120, size=self.n_mentees).tolist()
        signup_days = rng.uniform(0, 21, size=self.n_mentees).tolist()
        manual = (rng.random(self.n_mentees) < 0.3).tolist()
        history = (rng.random(self.n_mentees) < 0.05).tolist()
        other = rng.integers(0, max(1, self.n_mentors - 1), size=self.n_mentees).tolist()
        history_days = rng.uniform(20, 200, size=self.n_mentees).tolist()
        self.assigned_at: dict[int, datetime] = {}
        for j in sorted(self.mentor_of):
            i = self.mentor_of[j]
            mentor, mentee = self.mentors[i], self.mentees[j]
            started = self.now - timedelta(weeks=self.history_weeks[i] + 1,
                                           days=lead_days[j])
            self.assigned_at[j] = started
            created = started - timedelta(days=signup_days[j])
            score, reasons = self.fit(mentor, mentee)
            if history[j] and self.n_mentors > 1:  # an earlier mentor, before a reassignment
                previous = other[j] + (other[j] >= i)
                before = started - timedelta(days=history_days[j])
                created = before - timedelta(days=signup_days[j])
                rows.rows.append((ids[self.n_mentees + j], mentee["id"],
                                  self.mentors[previous]["id"], "auto", None, [], None,
                                  before, started, "reassigned"))
            if manual[j]:  # a director's choice: the reason says so, as the API writes it
                reasons = [why.MANUAL]
            rows.rows.append((ids[j], mentee["id"], mentor["id"],
                              "manual" if manual[j] else "auto", score, reasons,
                              self.director_id if manual[j] else None, started, None, None))
            mentee["created_at"] = created
        for j in unassigned:  # recent sign-ups, waiting for the matcher
            self.mentees[j]["created_at"] = self.now - timedelta(days=3 + signup_days[j] / 2)

        users = self.tables["users"]
        for m in self.mentees:
            users.rows.append((
                m["id"], m["email"], m["name"], "mentee", m["zone"], m["tier"], m["interests"],
                False, 10, 20, [], f'{{"timezone": "{m["zone"]}", "windows": []}}',
                m["created_at"], m["created_at"]))
        self.mentees_of: dict[int, list[int]] = {}
        for j, i in sorted(self.mentor_of.items()):
            self.mentees_of.setdefault(i, []).append(j)
        if self.mentees_of:
            i = min(self.mentees_of)
            mentor, mentee = self.mentors[i], self.mentees[self.mentees_of[i][0]]
            self.demo["mentor"] = DemoUser(uuid.UUID(mentor["id"]), "mentor", mentor["email"],
                                           mentor["name"])
            self.demo["mentee"] = DemoUser(uuid.UUID(mentee["id"]), "mentee", mentee["email"],
                                           mentee["name"])

    @staticmethod
    def _per_week(mentor: dict) -> int:
        return max(1, min(mentor["capacity"], round(mentor["capacity"] * LOAD_SHARE)))

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
                        status = ("completed" if r[0] < 0.85 else
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
            for _ in range(self.items_per_mentee):
                r = u[k]
                kind = KINDS[kind_draw[k]]
                if kind == "session_followup" and not followups:
                    kind = "mission_review"
                if kind == "goal_feedback" and mentee["tier"] not in goal_tiers:
                    kind = "risk_assessment"
                w = window_h[kind]
                if kind == "session_followup":
                    session_id, created = followups.pop(draws[k][0] % len(followups))
                else:
                    age_h = oldest_h * r[0] if mentor_id is None else ages[k]
                    created = (now - min(age_h, oldest_h * 0.98) * hour).replace(microsecond=0)
                age_h = (now - created) / hour
                if mentor_id is None:
                    status = "open"
                else:  # old items are nearly all done; young ones less so
                    done_p = 0.985 if age_h > w else 0.85 * age_h / w
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

    # --- flags and readiness ---------------------------------------------------------------

    def flags(self) -> None:
        rng = self.rng(5)
        rows = self.table("flags", (
            "id", "mentee_id", "raised_by", "severity", "category", "note", "status",
            "resolution", "resolved_by", "resolved_at", "created_at"))
        assigned = sorted(self.mentor_of)
        ids = uuids(rng, len(assigned))
        u = rng.random((len(assigned), 4)).tolist()
        severity = rng.choice(len(SEVERITIES), size=len(assigned),
                              p=[0.3, 0.4, 0.2, 0.1]).tolist()
        category = rng.integers(0, len(FLAG_CATEGORIES), size=len(assigned)).tolist()
        for n, j in enumerate(assigned):
            r = u[n]
            if r[0] >= 0.07:  # about 7 % of assigned mentees are flagged
                continue
            mentor_id = self.mentors[self.mentor_of[j]]["id"]
            created = max(self.assigned_at[j], self.now - timedelta(days=30 * r[1]))
            resolved = r[2] < 0.45
            rows.rows.append((
                ids[n], self.mentees[j]["id"], mentor_id, SEVERITIES[severity[n]],
                FLAG_CATEGORIES[category[n]], "Private note for the mentor and directors.",
                "resolved" if resolved else "open",
                "Talked it through; back on track." if resolved else None,
                mentor_id if resolved else None,
                created + (self.now - created) * r[3] if resolved else None, created))

    def readiness(self) -> None:
        rng = self.rng(6)
        rows = self.table("readiness_history", (
            "id", "mentee_id", "score", "previous_score", "recorded_at", "event_id"))
        n = self.n_mentees * READINESS_POINTS
        ids = uuids(rng, n)
        event_ids = uuids(rng, n)
        start = rng.uniform(35, 80, size=self.n_mentees).tolist()
        steps = rng.normal(1.5, 4, size=(self.n_mentees, READINESS_POINTS)).tolist()
        drop = (rng.random(self.n_mentees) < 0.08).tolist()
        drop_size = rng.uniform(10, 20, size=self.n_mentees).tolist()
        offsets = np.sort(rng.random((self.n_mentees, READINESS_POINTS)), axis=1).tolist()
        now, day = self.now, timedelta(days=1)
        k = 0
        for j, mentee in enumerate(self.mentees):
            span = min(60 * day, (now - mentee["created_at"]) * 0.95)
            dropping = drop[j] and span >= 20 * day
            if dropping:  # a sharp drop within the last 14 days: a risk reason
                early = span - 9 * day
                times = [now - span + early * o for o in offsets[j][:-2]]
                times += [now - 8 * day, now - day]
            else:
                times = [now - span * (1 - o) for o in offsets[j]]
            score, previous = start[j], None
            for p in range(READINESS_POINTS):
                if p:
                    score += -drop_size[j] if dropping and p == READINESS_POINTS - 1 \
                        else steps[j][p]
                score = round(min(100.0, max(0.0, score)), 1)
                rows.rows.append((ids[k], mentee["id"], score, previous,
                                  times[p].replace(microsecond=0), event_ids[k]))
                previous = score
                k += 1


def generate(settings: Settings, *, mentors: int, mentees: int, seed: int,
             work_items_per_mentee: int, sessions_per_mentor: int,
             assigned_fraction: float = 0.85,
             now: datetime) -> tuple[dict[str, Table], dict[str, DemoUser]]:
    """Every row, in memory, in load order, and one demo user per role."""
    generator = Generator(
        settings, mentors=mentors, mentees=mentees, seed=seed,
        work_items_per_mentee=work_items_per_mentee, sessions_per_mentor=sessions_per_mentor,
        assigned_fraction=assigned_fraction, now=now)
    return generator.run(), generator.demo
