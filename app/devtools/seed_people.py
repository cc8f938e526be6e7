"""Seed generation, part one: users (staff, mentors with their windows, mentees) and
assignments. A mixin of `app.devtools.seed_data.Generator`."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from app.devtools.seed_vocab import (
    EMAIL_DOMAIN,
    FIRST_NAMES,
    LAST_NAMES,
    LOAD_SHARE,
    SOFT_CASELOAD_WEEKS,
    STAFF,
    TIER_WEIGHTS,
    TIERS,
    TOPICS,
    ZONES,
    DemoUser,
    picks,
    uuids,
    zone_distance,
)
from app.services.relationships import reasons as why


class PeopleMixin:
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
        # Mentors first take mentees for SOFT_CASELOAD_WEEKS of their weekly slots (so each
        # mentee sees them every few weeks), and up to their maximum only once all are full.
        taken = [0] * self.n_mentors
        limit = [min(m["max"], max(1, math.floor(SOFT_CASELOAD_WEEKS * self._per_week(m))))
                 for m in self.mentors]
        open_mentors = list(range(self.n_mentors))
        self.mentor_of: dict[int, int] = {}
        candidates = rng.integers(0, 1 << 30, size=(n_assigned, 8)).tolist()
        for pos, j in enumerate(assigned):
            if not open_mentors:
                limit = [m["max"] for m in self.mentors]
                open_mentors = [i for i in range(self.n_mentors) if taken[i] < limit[i]]
            if pos < self.n_mentors:
                best = pos  # every mentor gets at least one mentee
            else:
                # The best fit among a few mentors with room: plausible, not optimal (doing
                # better is the matcher's job).
                mentee = self.mentees[j]
                options = sorted({open_mentors[c % len(open_mentors)] for c in candidates[pos]})
                best = max(options, key=lambda i: self._score(self.mentors[i], mentee))
            self.mentor_of[j] = best
            taken[best] += 1
            if taken[best] >= limit[best]:
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
