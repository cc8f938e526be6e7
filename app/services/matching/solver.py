"""The matcher's optimisation, pure NumPy + OR-Tools (arrays in, arrays out); the model and
its guarantees are described in `app/services/matching/engine.py`, the fit in `fit.py`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import max_flow, min_cost_flow

from app.services.matching.fit import SCALE, FitModel

DENSE_LIMIT = 2_000_000  # largest mentees x mentors block solved densely (hub re-assignment)


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
    ranked first, and those mentors need arcs to the mentees that fit them best. Pairs a
    mentee's time-zone limit forbids are never candidates."""
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
    if model.has_limits:
        feasible = fit >= 0
        mentee, mentor, fit = mentee[feasible], mentor[feasible], fit[feasible]
    if best_per_mentor is not None:  # a pair both sides chose appears once
        _, first = np.unique(mentee * m + mentor, return_index=True)
        mentee, mentor, fit = mentee[first], mentor[first], fit[first]
    return Candidates(mentee, mentor, fit, cols, complete=k == m)


def most_placements(group: np.ndarray, allowed: np.ndarray, capacity: np.ndarray) -> int:
    """How many mentees can be placed at most: a max flow from the groups of mentees with
    the same allowed mentors (`allowed[g]`) to the mentors' free places."""
    n, m = len(group), len(capacity)
    if not n or not m:
        return 0
    if allowed.all():  # nobody is limited (or no limit bites): anyone may take anyone
        return min(n, int(capacity.sum()))
    sizes = np.bincount(group, minlength=len(allowed))
    g_of, c_of = np.nonzero(allowed)
    groups, source, sink = len(allowed), len(allowed) + m, len(allowed) + m + 1
    flow = max_flow.SimpleMaxFlow()
    flow.add_arcs_with_capacity(
        np.concatenate([np.full(groups, source), g_of, groups + np.arange(m)]).astype(np.int32),
        np.concatenate([np.arange(groups), groups + c_of, np.full(m, sink)]).astype(np.int32),
        np.concatenate([sizes, sizes[g_of], capacity]).astype(np.int64),
    )
    if flow.solve(source, sink) != flow.OPTIMAL:
        raise RuntimeError("max flow failed")
    return int(flow.optimal_flow())


@dataclass
class _Hubs:
    """Catch-all routes: mentee -> hub of their group -> any mentor the group may take."""

    group: np.ndarray  # group of each mentee
    allowed: np.ndarray  # groups x mentors (positions in cols)
    floor: np.ndarray  # cost floor per mentor: the load term, a lower bound of any fit


def _solve_flow(n: int, capacity: np.ndarray, arc_e: np.ndarray, arc_m: np.ndarray,
                arc_fit: np.ndarray, hubs: _Hubs | None, must_place: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min-cost flow over mentees 0..n-1 and mentors 0..len(capacity)-1 (all with places),
    placing exactly `must_place` mentees (the most that can be placed).

    Returns (mentor of each mentee or -1, mentees routed through a hub, places each hub
    used per mentor: groups x mentors)."""
    m = len(capacity)
    groups = len(hubs.allowed) if hubs is not None else 0
    hub0, unplaced, sink = n + m, n + m + groups, n + m + groups + 1
    mentees, mentors = np.arange(n), n + np.arange(m)
    tails = [arc_e, mentors]
    heads = [n + arc_m, np.full(m, sink)]
    caps = [np.ones(len(arc_e), np.int64), capacity]
    costs = [-arc_fit, np.zeros(m, np.int64)]
    if hubs is not None:
        g_of, c_of = np.nonzero(hubs.allowed)
        tails += [mentees, hub0 + g_of]
        heads += [hub0 + hubs.group, n + c_of]
        caps += [np.ones(n, np.int64), capacity[c_of]]
        costs += [np.zeros(n, np.int64), -hubs.floor[c_of]]
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
    supplies = np.zeros(sink + 1, np.int64)
    supplies[:n] = 1
    supplies[sink] = -n
    solver.set_nodes_supplies(np.arange(sink + 1, dtype=np.int32), supplies)
    status = solver.solve()
    if status != solver.OPTIMAL:  # cannot happen: must_place is feasible by construction
        raise RuntimeError(f"min-cost flow failed: {status}")
    flows = solver.flows(arcs)
    mentor_of = np.full(n, -1, np.int64)
    direct = np.flatnonzero(flows[: len(arc_e)] > 0)
    mentor_of[arc_e[direct]] = arc_m[direct]
    if hubs is None:
        return mentor_of, np.zeros(0, np.int64), np.zeros((0, m), np.int64)
    offset = len(arc_e) + m
    hub_mentees = np.flatnonzero(flows[offset: offset + n] > 0)
    places = np.zeros((groups, m), np.int64)
    places[g_of, c_of] = flows[offset + n: offset + n + len(g_of)]
    return mentor_of, hub_mentees, places


def solve_optimal(model: FitModel, *, top_k: int, block_rows: int = 4096) -> Matching:
    """The optimal assignment over the candidate arcs (each mentee's top-K mentors, each
    mentor's best mentees; exact when K covers every mentor with a free place), placing
    as many mentees as can be placed."""
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
    group, allowed = model.limit_groups(cand.cols)
    must_place = most_placements(group, allowed, capacity)
    hubs = None if cand.complete else _Hubs(group, allowed, model.load_floor(cand.cols))
    local, hub_mentees, places = _solve_flow(
        n, capacity, cand.mentee, cand.mentor, cand.fit, hubs, must_place
    )
    for g in np.unique(group[hub_mentees]).tolist():
        # Which of a group's hub mentees takes which of its hub places is free for the
        # solver: choose it exactly.
        these = hub_mentees[group[hub_mentees] == g]
        used = np.flatnonzero(places[g])
        if len(these) * len(used) <= DENSE_LIMIT:
            dense = model.block(these, cand.cols[used])
            sub_e, sub_m = np.divmod(np.arange(dense.size), len(used))
            sub, _, _ = _solve_flow(len(these), places[g, used], sub_e, sub_m,
                                    dense.ravel(), None, len(these))
            local[these] = used[sub]
        else:
            local[these] = np.repeat(used, places[g, used])
    solver_ms = (time.perf_counter() - started) * 1000
    placed = np.flatnonzero(local >= 0)
    mentor_of[placed] = cand.cols[local[placed]]
    fit[placed] = _pair_fits(model, placed, mentor_of[placed])
    return Matching(mentor_of, fit, candidates_ms=candidates_ms, solver_ms=solver_ms,
                    arcs=len(cand.mentee), hub_mentees=len(hub_mentees))


def solve_greedy(model: FitModel, *, top_k: int, block_rows: int = 4096) -> Matching:
    """Baseline for the benchmark and the tests: best remaining pair first over the same
    candidates, then each mentee still out takes their best allowed mentor with a place."""
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
        row[left == 0] = -2
        m = int(np.argmax(row))
        if row[m] < 0:  # no allowed mentor with a place left
            continue
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
