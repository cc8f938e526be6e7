"""Seed generation, part three: flags and readiness history. A mixin of
`app.devtools.seed_data.Generator`."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from app.devtools.seed_vocab import (
    FLAG_CATEGORIES,
    FLAGGED,
    READINESS_DROP,
    READINESS_POINTS,
    SEVERITIES,
    uuids,
)


class SignalsMixin:
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
            if r[0] >= FLAGGED:
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
        # Slow progress with small dips (never 10 points within two weeks by chance), and a
        # sharp drop for READINESS_DROP of the mentees, among those with a long history.
        steps = np.clip(rng.normal(1.5, 2.5, size=(self.n_mentees, READINESS_POINTS)),
                        -3, None).tolist()
        now, day = self.now, timedelta(days=1)
        spans = [min(60 * day, (now - m["created_at"]) * 0.95) for m in self.mentees]
        eligible = [j for j, span in enumerate(spans) if span >= 20 * day]
        chosen = rng.permutation(len(eligible))[:round(READINESS_DROP * self.n_mentees)]
        drop = {eligible[c] for c in chosen.tolist()}
        drop_size = rng.uniform(10, 20, size=self.n_mentees).tolist()
        offsets = np.sort(rng.random((self.n_mentees, READINESS_POINTS)), axis=1).tolist()
        k = 0
        for j, mentee in enumerate(self.mentees):
            span = spans[j]
            dropping = j in drop
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
