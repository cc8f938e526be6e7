"""The seed programme's vocabulary and small helpers (names, zones, topics, ids)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

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

# Risk (app/services/risk): a demo programme where 10-20 % of mentees are at risk, as a
# director would expect, with every reason present. Shares of mentees (or sessions):
HABIT_TROUBLE = 0.025  # broke a habit streak in the last week (the others' streaks are older)
OVERDUE_TROUBLE = 0.025  # have work past its SLA (everyone else's late work is done)
LATE_DONE_SHARE = 0.7  # of those mentees' items past their SLA, the share done
READINESS_DROP = 0.025  # readiness fell 10+ points in the last two weeks
FLAGGED = 0.04  # of assigned mentees, flagged by their mentor (about half resolved since)
NO_SHOW_SHARE = 0.03  # of past sessions (7 % are cancelled, the rest completed)
HABIT_WINDOW_HOURS = 7 * 24
SOFT_CASELOAD_WEEKS = 2.0  # mentors first get mentees for this many weeks of slots (below)

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
