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

from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from app.config import Settings
from app.devtools.seed_activity import ActivityMixin
from app.devtools.seed_people import PeopleMixin
from app.devtools.seed_signals import SignalsMixin
from app.devtools.seed_vocab import (
    HABIT_TROUBLE,
    LOAD_ORDER,
    OVERDUE_TROUBLE,
    DemoUser,
    Table,
)

__all__ = ["DemoUser", "Generator", "Table", "generate"]


class Generator(PeopleMixin, ActivityMixin, SignalsMixin):
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

    def troubles(self) -> None:
        """Which mentees show a risk reason through their work items (a stream of its own,
        so the other tables' draws do not move): HABIT_TROUBLE of them broke a habit streak
        this week, OVERDUE_TROUBLE have work past its SLA."""
        rng = self.rng(7)
        self.habit_trouble = set(
            rng.permutation(self.n_mentees)[:round(HABIT_TROUBLE * self.n_mentees)].tolist())
        self.overdue_trouble = set(
            rng.permutation(self.n_mentees)[:round(OVERDUE_TROUBLE * self.n_mentees)].tolist())

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
        self.troubles()
        for build, ready in steps:
            build()
            for name in ready:
                emit(name, self.tables[name])


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
