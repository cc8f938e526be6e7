"""The fit of mentees with mentors (arrays in, arrays out), as the solver and the proposals'
explanations see it. The terms, weights and rules are described in `app/config.py` (the
`match_*` settings) and the README ("Matching").

Everything is integer-exact where the solver needs it: fits are scaled by SCALE and rounded,
and `block` (a dense |rows| x |cols| matrix) and `pairs` (one value per pair) run the same
float32 operations in the same order, so a pair's fit is the same integer whichever way it
is computed. A pair the mentee's hard limit (`max_timezone_offset_hours`) forbids has fit -1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.services.matching.weights import Weights

SCALE = 1000  # fits are integers for the solver: round(fit x SCALE)
NO_LIMIT = np.inf
INFEASIBLE = -1


def normalize_tags(tags: Iterable[str] | None) -> frozenset[str]:
    return frozenset(t.strip().lower() for t in (tags or ()) if t and t.strip())


def normalize_languages(tags: Iterable[str] | None) -> frozenset[str]:
    """Primary language subtags ("pt-BR" -> "pt"): two people share a language when these
    meet."""
    return frozenset(t.strip().lower().replace("_", "-").split("-")[0]
                     for t in (tags or ()) if t and t.strip())


def timezone_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hours between UTC offsets on the 24 h circle (0..12), |a| x |b|. With two columns per
    side (January and July offsets), the larger of the two seasons' gaps."""
    if a.ndim == 1:
        diff = np.abs(a[:, None] - b[None, :]) % 24.0
        return np.minimum(diff, 24.0 - diff)
    return np.maximum(timezone_gap(a[:, 0], b[:, 0]), timezone_gap(a[:, 1], b[:, 1]))


def _seasons(offsets: np.ndarray) -> np.ndarray:
    offsets = np.asarray(offsets, np.float64)
    return np.stack([offsets, offsets], axis=1) if offsets.ndim == 1 else offsets


@dataclass
class MatchProblem:
    """Mentees to place and mentors who may take them, as the solver sees them.

    Offsets are UTC offsets in hours, one per person, or two (January, July) so the gap is
    the largest over the year. The optional fields default to "nothing stated"."""

    mentee_ids: list[uuid.UUID]
    mentee_tags: list[frozenset[str]]
    mentee_offsets: np.ndarray
    mentor_ids: list[uuid.UUID]
    mentor_tags: list[frozenset[str]]
    mentor_offsets: np.ndarray
    mentor_active: np.ndarray  # active mentees now
    mentor_max: np.ndarray  # mentor_max_mentees
    mentee_languages: list[frozenset[str]] | None = None
    mentor_languages: list[frozenset[str]] | None = None
    mentee_limits: np.ndarray | None = None  # max_timezone_offset_hours, inf: none
    mentee_preferred_tags: list[frozenset[str]] | None = None
    mentee_preferred_mentors: list[Sequence[int]] | None = None  # mentor indices

    def __post_init__(self) -> None:
        n, m = len(self.mentee_ids), len(self.mentor_ids)
        self.mentee_offsets = _seasons(self.mentee_offsets).reshape(n, 2)
        self.mentor_offsets = _seasons(self.mentor_offsets).reshape(m, 2)
        self.mentee_languages = self.mentee_languages or [frozenset()] * n
        self.mentor_languages = self.mentor_languages or [frozenset()] * m
        if self.mentee_limits is None:
            self.mentee_limits = np.full(n, NO_LIMIT)
        self.mentee_limits = np.asarray(self.mentee_limits, np.float64)
        self.mentee_preferred_tags = self.mentee_preferred_tags or [frozenset()] * n
        self.mentee_preferred_mentors = self.mentee_preferred_mentors or [()] * n

    @property
    def remaining(self) -> np.ndarray:
        return np.maximum(self.mentor_max - self.mentor_active, 0).astype(np.int64)


class _Sets:
    """Each row's set of codes in CSR form, densified per block of rows."""

    def __init__(self, sets: Sequence[Iterable[int]], width: int) -> None:
        codes = [sorted(s) for s in sets]
        self.width = width
        self.ptr = np.zeros(len(codes) + 1, np.int64)
        np.cumsum([len(c) for c in codes], out=self.ptr[1:])
        self.idx = np.fromiter((i for c in codes for i in c), np.int64, count=int(self.ptr[-1]))
        self.sizes = np.diff(self.ptr)

    def dense(self, rows: np.ndarray) -> np.ndarray:
        starts, lengths = self.ptr[rows], self.sizes[rows]
        out = np.zeros((len(rows), self.width), np.float32)
        total = int(lengths.sum())
        if total:
            row_of = np.repeat(np.arange(len(rows)), lengths)
            offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            out[row_of, self.idx[np.repeat(starts, lengths) + offsets]] = 1.0
        return out


class FitModel:
    """Fits of mentees with mentors, computed block by block (never the whole n x m matrix).

    The time zone and load terms depend only on the mentee's offsets and the mentor, so
    they are one small table (distinct offsets x mentors) gathered per block. Topics,
    preferred specialties and languages are one-hot encoded over the mentors' vocabulary
    (a topic no mentor has cannot overlap), so each is one float32 matrix product per block.
    """

    def __init__(self, problem: MatchProblem, weights: Weights,
                 preference_boost: float = 0.0) -> None:
        self.problem = p = problem
        self.weights = w = weights.normalised()
        self.boost = preference_boost
        n, m = len(p.mentee_ids), len(p.mentor_ids)
        # Specialties: topics = interests and preferred specialties.
        self.tag_names = sorted(set().union(*p.mentor_tags))
        vocabulary = {tag: i for i, tag in enumerate(self.tag_names)}
        self.specialties = np.zeros((m, len(vocabulary)), np.float32)
        for row, tags in enumerate(p.mentor_tags):
            self.specialties[row, [vocabulary[t] for t in tags]] = 1.0
        topics = [tags | wanted for tags, wanted in zip(p.mentee_tags, p.mentee_preferred_tags,
                                                        strict=True)]
        self.topics = _Sets([[vocabulary[t] for t in s if t in vocabulary] for s in topics],
                            len(vocabulary))
        counts = np.array([max(len(s), 1) for s in topics], np.float64)
        self.specialty_weight = (w.specialty / counts).astype(np.float32)
        self.wanted = _Sets([[vocabulary[t] for t in s if t in vocabulary]
                             for s in p.mentee_preferred_tags], len(vocabulary))
        wanted_counts = np.array([max(len(s), 1) for s in p.mentee_preferred_tags], np.float64)
        self.wanted_weight = (preference_boost / wanted_counts).astype(np.float32)
        self.has_wanted = bool(self.wanted.ptr[-1]) and preference_boost > 0
        # Languages: 1 shared (or the mentee names none), 0.5 the mentor names none, 0 else.
        self.language_names = sorted(set().union(*p.mentor_languages))
        codes = {lang: i for i, lang in enumerate(self.language_names)}
        self.mentor_langs = np.zeros((m, len(codes)), np.float32)
        for row, langs in enumerate(p.mentor_languages):
            self.mentor_langs[row, [codes[x] for x in langs]] = 1.0
        self.mentee_langs = _Sets([[codes[x] for x in s if x in codes]
                                   for s in p.mentee_languages], len(codes))
        self.mentee_no_language = np.array([not s for s in p.mentee_languages], bool)
        self.mentor_no_language = np.array([not s for s in p.mentor_languages], bool)
        self.language_values = np.array([0.0, w.language * 0.5, w.language], np.float32)
        self.use_language = w.language > 0
        # Preferred mentors: sorted pair codes mentee * m + mentor.
        self.preferred = _Sets(p.mentee_preferred_mentors, m)
        self.preferred_codes = np.unique(
            np.repeat(np.arange(n), self.preferred.sizes) * max(m, 1) + self.preferred.idx)
        self.has_preferred = bool(len(self.preferred_codes)) and preference_boost > 0
        self.boost32 = np.float32(preference_boost)
        # Time zone and load, per distinct pair of (January, July) offsets.
        with np.errstate(divide="ignore", invalid="ignore"):
            load = np.where(p.mentor_max > 0,
                            1.0 - p.mentor_active / np.maximum(p.mentor_max, 1), 0.0)
        self.load_term = w.load * np.clip(load, 0.0, 1.0)
        offsets, group = np.unique(p.mentee_offsets, axis=0, return_inverse=True)
        self.mentee_group = group.reshape(-1)
        self.gap = timezone_gap(offsets, p.mentor_offsets)  # groups x mentors, hours
        self.base = (w.timezone * (1.0 - self.gap / 12.0)
                     + self.load_term[None, :]).astype(np.float32)
        self.has_limits = bool(np.isfinite(p.mentee_limits).any())

    # --- the fit -------------------------------------------------------------------------

    def _language_block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # One float32 pass (np.where on the exact term values), not int levels and a gather:
        # the same numbers as `_language_pairs`, a fraction of the memory traffic.
        shared = (self.mentee_langs.dense(rows) @ self.mentor_langs[cols].T) > 0
        otherwise = np.where(self.mentor_no_language[cols], self.language_values[1],
                             self.language_values[0])
        out = np.where(shared, self.language_values[2], otherwise[None, :])
        out[self.mentee_no_language[rows]] = self.language_values[2]
        return out

    def _language_pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        shared = (self.mentee_langs.dense(rows) * self.mentor_langs[cols]).sum(axis=1) > 0
        level = np.where(shared, 2, np.where(self.mentor_no_language[cols], 1, 0))
        level[self.mentee_no_language[rows]] = 2
        return self.language_values[level]

    def _preferred_block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """|rows| x |cols|: the pairs where the mentee prefers the mentor."""
        m = max(len(self.problem.mentor_ids), 1)
        if len(np.unique(cols)) < len(cols):  # a mentor twice (the tests' one column per place)
            return np.isin(rows[:, None] * m + cols[None, :], self.preferred_codes)
        out = np.zeros((len(rows), len(cols)), bool)
        position = np.full(m, -1, np.int64)
        position[cols] = np.arange(len(cols))
        starts, sizes = self.preferred.ptr[rows], self.preferred.sizes[rows]
        if sizes.sum():
            row_of = np.repeat(np.arange(len(rows)), sizes)
            offs = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            col = position[self.preferred.idx[np.repeat(starts, sizes) + offs]]
            out[row_of[col >= 0], col[col >= 0]] = True
        return out

    def allowed(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """|rows| x |cols|: the pairs the mentees' time-zone limits allow."""
        gap = self.gap[np.ix_(self.mentee_group[rows], cols)]
        return gap <= self.problem.mentee_limits[rows, None] + 1e-9

    def scaled(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Fits x SCALE, rounded, as float32 (rows = mentee indices, cols = mentor
        indices); INFEASIBLE where a limit forbids the pair."""
        fit = self.base[np.ix_(self.mentee_group[rows], cols)]
        overlap = self.topics.dense(rows) @ self.specialties[cols].T
        overlap *= self.specialty_weight[rows, None]
        fit += overlap
        if self.use_language:
            fit += self._language_block(rows, cols)
        if self.has_wanted:
            wanted = self.wanted.dense(rows) @ self.specialties[cols].T
            wanted *= self.wanted_weight[rows, None]
            fit += wanted
        if self.has_preferred:
            fit[self._preferred_block(rows, cols)] += self.boost32
        fit *= np.float32(SCALE)
        np.rint(fit, out=fit)
        if self.has_limits:  # only the rows of mentees with a limit can be forbidden
            limited = np.flatnonzero(np.isfinite(self.problem.mentee_limits[rows]))
            if len(limited):
                sub = fit[limited]
                sub[~self.allowed(rows[limited], cols)] = INFEASIBLE
                fit[limited] = sub
        return fit

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Scaled integer fits, |rows| x |cols|."""
        return self.scaled(rows, cols).astype(np.int64)

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Scaled integer fit of each pair (rows[i], cols[i]); the same numbers as `block`."""
        out = np.zeros(len(rows), np.int64)
        m = max(len(self.problem.mentor_ids), 1)
        for start in range(0, len(rows), 8192):
            r, c = rows[start:start + 8192], cols[start:start + 8192]
            fit = self.base[self.mentee_group[r], c]
            overlap = (self.topics.dense(r) * self.specialties[c]).sum(axis=1, dtype=np.float32)
            overlap *= self.specialty_weight[r]
            fit += overlap
            if self.use_language:
                fit += self._language_pairs(r, c)
            if self.has_wanted:
                wanted = (self.wanted.dense(r) * self.specialties[c]).sum(axis=1,
                                                                          dtype=np.float32)
                wanted *= self.wanted_weight[r]
                fit += wanted
            if self.has_preferred:
                fit[np.isin(r * m + c, self.preferred_codes)] += self.boost32
            fit *= np.float32(SCALE)
            values = np.rint(fit).astype(np.int64)
            if self.has_limits:
                gap = self.gap[self.mentee_group[r], c]
                values[gap > self.problem.mentee_limits[r] + 1e-9] = INFEASIBLE
            out[start:start + 8192] = values
        return out

    def load_floor(self, cols: np.ndarray) -> np.ndarray:
        """A lower bound of any fit with each mentor: their load term alone."""
        return np.rint(self.load_term[cols].astype(np.float32) * np.float32(SCALE)
                       ).astype(np.int64)

    # --- groups of mentees with the same allowed mentors ---------------------------------

    def limit_groups(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(group of each mentee, allowed[group, col]): mentees with no limit form one group
        allowed everywhere; the others are grouped by (offsets, limit)."""
        p = self.problem
        limits = p.mentee_limits
        key = np.where(np.isfinite(limits), self.mentee_group, -1)
        pairs = np.stack([key.astype(np.float64), np.where(np.isfinite(limits), limits, -1.0)],
                         axis=1)
        unique, group = np.unique(pairs, axis=0, return_inverse=True)
        group = group.reshape(-1)
        allowed = np.ones((len(unique), len(cols)), bool)
        for g, (offset_group, limit) in enumerate(unique.tolist()):
            if limit >= 0:
                allowed[g] = self.gap[int(offset_group), cols] <= limit + 1e-9
        return group, allowed
