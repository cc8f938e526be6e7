"""The matcher's optimisation, pure NumPy + OR-Tools (arrays in, arrays out); the model and
its guarantees are described in `app/services/matching/engine.py`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from app.config import Settings

SCALE = 1000  # fits are integers in [0, SCALE] for the solver
DENSE_LIMIT = 2_000_000  # largest mentees x mentors block solved densely (hub re-assignment)
REASON_SEPARATOR = "\x1f"  # joins an assignment's reasons for the bulk insert


@dataclass(frozen=True, slots=True)
class Weights:
    specialty: float
    timezone: float
    load: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Weights:
        return cls(settings.match_weight_specialty, settings.match_weight_timezone,
                   settings.match_weight_load)

    @property
    def total(self) -> float:
        return self.specialty + self.timezone + self.load


@dataclass
class MatchProblem:
    """Mentees to place and mentors who may take them, as the solver sees them."""

    mentee_ids: list[uuid.UUID]
    mentee_tags: list[frozenset[str]]
    mentee_offsets: np.ndarray  # UTC offset in hours at the run time
    mentor_ids: list[uuid.UUID]
    mentor_tags: list[frozenset[str]]
    mentor_offsets: np.ndarray
    mentor_active: np.ndarray  # active mentees now
    mentor_max: np.ndarray  # mentor_max_mentees

    @property
    def remaining(self) -> np.ndarray:
        return np.maximum(self.mentor_max - self.mentor_active, 0).astype(np.int64)


def normalize_tags(tags: Iterable[str] | None) -> frozenset[str]:
    return frozenset(t.strip().lower() for t in (tags or ()) if t and t.strip())


class FitModel:
    """Fits of mentees with mentors, computed block by block (never the whole n x m matrix).

    Everything that does not depend on the tags (time zone and load terms) depends only on
    the mentee's UTC offset and the mentor, so it is one small table (distinct offsets x
    mentors) gathered per block. Tags are one-hot encoded over the mentors' specialties
    (an interest no mentor has cannot overlap), so the specialty term is one float32 matrix
    product per block. `block` and `pairs` run the same float32 operations, so a pair's fit
    is the same integer whichever way it is computed."""

    def __init__(self, problem: MatchProblem, weights: Weights) -> None:
        self.problem = problem
        self.weights = weights
        self.tag_names = sorted(set().union(*problem.mentor_tags))
        vocabulary = {tag: i for i, tag in enumerate(self.tag_names)}
        self.specialties = np.zeros((len(problem.mentor_tags), len(vocabulary)), np.float32)
        for row, tags in enumerate(problem.mentor_tags):
            self.specialties[row, [vocabulary[t] for t in tags]] = 1.0
        # Mentees' interests in CSR form (indices of known tags), weighted by 1 / their
        # number of interests (specialty = share of the interests covered).
        codes = [[vocabulary[t] for t in tags if t in vocabulary] for tags in problem.mentee_tags]
        self.interest_ptr = np.zeros(len(codes) + 1, np.int64)
        np.cumsum([len(c) for c in codes], out=self.interest_ptr[1:])
        self.interest_idx = np.fromiter((i for c in codes for i in c), np.int64,
                                        count=int(self.interest_ptr[-1]))
        counts = np.array([max(len(t), 1) for t in problem.mentee_tags], np.float64)
        self.specialty_weight = (weights.specialty / weights.total / counts).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            load = np.where(problem.mentor_max > 0,
                            1.0 - problem.mentor_active / np.maximum(problem.mentor_max, 1), 0.0)
        self.load_term = weights.load * np.clip(load, 0.0, 1.0) / weights.total
        offsets, self.mentee_group = np.unique(problem.mentee_offsets, return_inverse=True)
        self.mentee_group = self.mentee_group.reshape(-1)
        gap = timezone_gap(offsets, problem.mentor_offsets)
        self.base = (weights.timezone * (1.0 - gap / 12.0) / weights.total
                     + self.load_term[None, :]).astype(np.float32)

    def _interests(self, rows: np.ndarray) -> np.ndarray:
        starts, ends = self.interest_ptr[rows], self.interest_ptr[rows + 1]
        lengths = ends - starts
        dense = np.zeros((len(rows), len(self.tag_names)), np.float32)
        if lengths.sum():
            row_of = np.repeat(np.arange(len(rows)), lengths)
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            dense[row_of, self.interest_idx[np.repeat(starts, lengths) + offsets]] = 1.0
        return dense

    def scaled(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Fits x SCALE, rounded, as float32 (rows = mentee indices, cols = mentor indices)."""
        fit = self.base[np.ix_(self.mentee_group[rows], cols)]
        overlap = self._interests(rows) @ self.specialties[cols].T
        overlap *= self.specialty_weight[rows, None]
        fit += overlap
        fit *= np.float32(SCALE)
        return np.rint(fit, out=fit)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Scaled integer fits, |rows| x |cols|."""
        return self.scaled(rows, cols).astype(np.int64)

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Scaled integer fit of each pair (rows[i], cols[i]); the same numbers as `block`."""
        out = np.zeros(len(rows), np.int64)
        for start in range(0, len(rows), 8192):
            r, c = rows[start:start + 8192], cols[start:start + 8192]
            fit = self.base[self.mentee_group[r], c]
            overlap = (self._interests(r) * self.specialties[c]).sum(axis=1, dtype=np.float32)
            overlap *= self.specialty_weight[r]
            fit += overlap
            fit *= np.float32(SCALE)
            out[start:start + 8192] = np.rint(fit)
        return out

    def load_floor(self, cols: np.ndarray) -> np.ndarray:
        """A lower bound of any fit with each mentor: their load term alone."""
        return np.rint(self.load_term[cols].astype(np.float32) * np.float32(SCALE)
                       ).astype(np.int64)

    def reasons(self, mentees: np.ndarray, mentors: np.ndarray) -> list[list[str]]:
        """Why each pair fits: `specialty:<tag>`... (shared tags, sorted),
        `timezone_diff:<h>h`, `load:<active>/<max>` (at the start of the run)."""
        p = self.problem
        shared = self._interests(mentees) * self.specialties[mentors]
        pair_of, tag_of = np.nonzero(shared)
        bounds = np.searchsorted(pair_of, np.arange(len(mentees) + 1))
        diff = np.abs(p.mentee_offsets[mentees] - p.mentor_offsets[mentors]) % 24.0
        gaps = np.minimum(diff, 24.0 - diff).tolist()
        active, limit = p.mentor_active[mentors].tolist(), p.mentor_max[mentors].tolist()
        names = [f"specialty:{t.replace(REASON_SEPARATOR, ' ')}" for t in self.tag_names]
        tags = tag_of.tolist()
        bounds = bounds.tolist()
        return [
            [*(names[t] for t in tags[bounds[i]:bounds[i + 1]]),
             f"timezone_diff:{gaps[i]:g}h", f"load:{active[i]}/{limit[i]}"]
            for i in range(len(mentees))
        ]


def timezone_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hours between UTC offsets on the 24 h circle (0..12), |a| x |b|."""
    diff = np.abs(a[:, None] - b[None, :]) % 24.0
    return np.minimum(diff, 24.0 - diff)


@dataclass
class Matching:
    """A solution: for each mentee, the index of their mentor (-1: unplaced) and the fit."""

    mentor_of: np.ndarray
    fit: np.ndarray  # scaled integer fit per mentee, 0 when unplaced
    candidates_ms: float = 0.0
    solver_ms: float = 0.0
    arcs: int = 0
    hub_mentees: int = 0  # mentees that needed a mentor outside their top-K

    @property
    def placed(self) -> int:
        return int((self.mentor_of >= 0).sum())

    @property
    def total_fit_scaled(self) -> int:
        return int(self.fit[self.mentor_of >= 0].sum())

    @property
    def total_fit(self) -> float:
        return self.total_fit_scaled / SCALE


@dataclass
class Candidates:
    mentee: np.ndarray  # int64, mentee index
    mentor: np.ndarray  # int64, position in `cols`
    fit: np.ndarray  # int64, scaled
    cols: np.ndarray  # mentors with a free place
    complete: bool  # every mentee has every open mentor as candidate


class _BestPerMentor:
    """Each mentor's `side` best mentees seen so far, as flat (mentee, mentor, fit) arrays.

    A block only adds pairs that beat the mentor's current `side`-th best (one vectorised
    comparison), so after the first block very few pairs are touched."""

    def __init__(self, m: int, side: int) -> None:
        self.m, self.side = m, side
        self.threshold = np.full(m, -np.inf, np.float32)
        self.mentee = np.zeros(0, np.int64)
        self.mentor = np.zeros(0, np.int64)
        self.fit = np.zeros(0, np.float32)

    def add(self, rows: np.ndarray, fit: np.ndarray) -> None:
        if not len(self.mentor) and len(rows) > self.side:
            # First block: a partition per mentor (column) sets useful thresholds at once.
            r = np.argpartition(fit, len(rows) - self.side, axis=0)[-self.side:].ravel()
            c = np.tile(np.arange(self.m), self.side)
        else:
            r, c = np.nonzero(fit > self.threshold)
        mentee = np.concatenate([self.mentee, rows[r]])
        mentor = np.concatenate([self.mentor, c])
        values = np.concatenate([self.fit, fit[r, c]])
        order = np.lexsort((-values, mentor))  # by mentor, best first
        mentor, mentee, values = mentor[order], mentee[order], values[order]
        starts = np.searchsorted(mentor, np.arange(self.m))
        rank = np.arange(len(mentor)) - starts[mentor]
        keep = rank < self.side
        self.mentee, self.mentor, self.fit = mentee[keep], mentor[keep], values[keep]
        full = np.bincount(self.mentor, minlength=self.m) == self.side
        last = starts + self.side - 1  # the side-th best, where a mentor has that many
        self.threshold[full] = values[last[full]]


def candidates(model: FitModel, *, top_k: int, block_rows: int,
               mentor_side: bool = True) -> Candidates:
    """Each mentee's `top_k` best mentors among those with a free place, plus each such
    mentor's best mentees (twice as many as their free places): when places are scarce,
    popular mentors fill up and the mentees they push out need arcs to the mentors nobody
    ranked first, and those mentors need arcs to the mentees that fit them best."""
    problem = model.problem
    cols = np.flatnonzero(problem.remaining > 0)
    n, m = len(problem.mentee_ids), len(cols)
    k = min(top_k, m)
    side = min(n, 2 * int(problem.remaining[cols].max())) if (mentor_side and m) else 0
    best_per_mentor = _BestPerMentor(m, side) if side and k < m else None
    parts_e, parts_m, parts_f = [], [], []
    if n and m:
        for start in range(0, n, block_rows):
            rows = np.arange(start, min(n, start + block_rows))
            fit = model.scaled(rows, cols)
            if best_per_mentor is not None:
                best_per_mentor.add(rows, fit)
            if k < m:
                best = np.argpartition(fit, m - k, axis=1)[:, m - k:]
                fit = np.take_along_axis(fit, best, axis=1)
            else:
                best = np.broadcast_to(np.arange(m), fit.shape)
            parts_e.append(np.repeat(rows, k))
            parts_m.append(best.ravel())
            parts_f.append(fit.ravel())
        if best_per_mentor is not None:
            parts_e.append(best_per_mentor.mentee)
            parts_m.append(best_per_mentor.mentor)
            parts_f.append(best_per_mentor.fit)
    if not parts_e:
        empty = np.zeros(0, np.int64)
        return Candidates(empty, empty, empty, cols, complete=k == m)
    mentee = np.concatenate(parts_e).astype(np.int64)
    mentor = np.concatenate(parts_m).astype(np.int64)
    fit = np.concatenate(parts_f).astype(np.int64)
    if best_per_mentor is not None:  # a pair both sides chose appears once
        _, first = np.unique(mentee * m + mentor, return_index=True)
        mentee, mentor, fit = mentee[first], mentor[first], fit[first]
    return Candidates(mentee, mentor, fit, cols, complete=k == m)


def _solve_flow(n: int, capacity: np.ndarray, arc_e: np.ndarray, arc_m: np.ndarray,
                arc_fit: np.ndarray, hub_fit: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min-cost flow over mentees 0..n-1 and mentors 0..len(capacity)-1 (all with places).

    Returns (mentor of each mentee or -1, mentees routed through the hub, places the hub
    used per mentor). Places exactly min(n, sum(capacity)) mentees."""
    m = len(capacity)
    hub, unplaced, sink = n + m, n + m + 1, n + m + 2
    must_place = min(n, int(capacity.sum()))
    mentees, mentors = np.arange(n), n + np.arange(m)
    tails = [arc_e, mentors]
    heads = [n + arc_m, np.full(m, sink)]
    caps = [np.ones(len(arc_e), np.int64), capacity]
    costs = [-arc_fit, np.zeros(m, np.int64)]
    if hub_fit is not None:
        tails += [mentees, np.full(m, hub)]
        heads += [np.full(n, hub), mentors]
        caps += [np.ones(n, np.int64), capacity]
        costs += [np.zeros(n, np.int64), -hub_fit]
    if must_place < n:
        tails += [mentees, [unplaced]]
        heads += [np.full(n, unplaced), [sink]]
        caps += [np.ones(n, np.int64), [n - must_place]]
        costs += [np.zeros(n, np.int64), [0]]
    solver = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails).astype(np.int32), np.concatenate(heads).astype(np.int32),
        np.concatenate(caps).astype(np.int64), np.concatenate(costs).astype(np.int64),
    )
    supplies = np.zeros(n + m + 3, np.int64)
    supplies[:n] = 1
    supplies[sink] = -n
    solver.set_nodes_supplies(np.arange(n + m + 3, dtype=np.int32), supplies)
    status = solver.solve()
    if status != solver.OPTIMAL:  # cannot happen: the graph is feasible by construction
        raise RuntimeError(f"min-cost flow failed: {status}")
    flows = solver.flows(arcs)
    mentor_of = np.full(n, -1, np.int64)
    direct = np.flatnonzero(flows[: len(arc_e)] > 0)
    mentor_of[arc_e[direct]] = arc_m[direct]
    if hub_fit is None:
        return mentor_of, np.zeros(0, np.int64), np.zeros(m, np.int64)
    offset = len(arc_e) + m
    hub_mentees = np.flatnonzero(flows[offset: offset + n] > 0)
    hub_places = flows[offset + n: offset + n + m].astype(np.int64)
    return mentor_of, hub_mentees, hub_places


def solve_optimal(model: FitModel, *, top_k: int, block_rows: int = 4096) -> Matching:
    """The optimal assignment over the candidate arcs (each mentee's top-K mentors, each
    mentor's best mentees; exact when K covers every mentor with a free place), placing
    as many mentees as there are places."""
    problem = model.problem
    n = len(problem.mentee_ids)
    started = time.perf_counter()
    cand = candidates(model, top_k=top_k, block_rows=block_rows)
    candidates_ms = (time.perf_counter() - started) * 1000
    mentor_of = np.full(n, -1, np.int64)
    fit = np.zeros(n, np.int64)
    if not n or not len(cand.cols):
        return Matching(mentor_of, fit, candidates_ms=candidates_ms)
    capacity = problem.remaining[cand.cols]
    started = time.perf_counter()
    hub_fit = None if cand.complete else model.load_floor(cand.cols)
    local, hub_mentees, hub_places = _solve_flow(
        n, capacity, cand.mentee, cand.mentor, cand.fit, hub_fit
    )
    if len(hub_mentees):
        # Which hub mentee takes which hub place is free for the solver: choose it exactly.
        used = np.flatnonzero(hub_places)
        if len(hub_mentees) * len(used) <= DENSE_LIMIT:
            dense = model.block(hub_mentees, cand.cols[used])
            sub_e, sub_m = np.divmod(np.arange(dense.size), len(used))
            sub, _, _ = _solve_flow(len(hub_mentees), hub_places[used], sub_e, sub_m,
                                    dense.ravel(), None)
            local[hub_mentees] = used[sub]
        else:
            local[hub_mentees] = np.repeat(used, hub_places[used])
    solver_ms = (time.perf_counter() - started) * 1000
    placed = np.flatnonzero(local >= 0)
    mentor_of[placed] = cand.cols[local[placed]]
    fit[placed] = _pair_fits(model, placed, mentor_of[placed])
    return Matching(mentor_of, fit, candidates_ms=candidates_ms, solver_ms=solver_ms,
                    arcs=len(cand.mentee), hub_mentees=len(hub_mentees))


def solve_greedy(model: FitModel, *, top_k: int, block_rows: int = 4096) -> Matching:
    """Baseline for the benchmark and the tests: best remaining pair first over the same
    candidates, then each mentee still out takes their best mentor with a free place."""
    problem = model.problem
    n = len(problem.mentee_ids)
    started = time.perf_counter()
    cand = candidates(model, top_k=top_k, block_rows=block_rows)
    candidates_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    mentor_of = np.full(n, -1, np.int64)
    left = problem.remaining[cand.cols].copy() if len(cand.cols) else np.zeros(0, np.int64)
    order = np.argsort(-cand.fit, kind="stable")
    for e, m in zip(cand.mentee[order].tolist(), cand.mentor[order].tolist(), strict=True):
        if mentor_of[e] < 0 and left[m] > 0:
            mentor_of[e] = m
            left[m] -= 1
    for e in np.flatnonzero(mentor_of < 0).tolist():
        if not left.sum():
            break
        row = model.block(np.array([e]), cand.cols)[0]
        row[left == 0] = -1
        m = int(np.argmax(row))
        mentor_of[e] = m
        left[m] -= 1
    solver_ms = (time.perf_counter() - started) * 1000
    result = np.full(n, -1, np.int64)
    placed = np.flatnonzero(mentor_of >= 0)
    result[placed] = cand.cols[mentor_of[placed]]
    fit = np.zeros(n, np.int64)
    fit[placed] = _pair_fits(model, placed, result[placed])
    return Matching(result, fit, candidates_ms=candidates_ms, solver_ms=solver_ms,
                    arcs=len(cand.mentee))


def _pair_fits(model: FitModel, mentees: np.ndarray, mentors: np.ndarray) -> np.ndarray:
    return model.pairs(mentees, mentors) if len(mentees) else np.zeros(0, np.int64)


