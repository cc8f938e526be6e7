"""The matcher's optimisation against an exact solver (scipy's linear_sum_assignment on the
matrix expanded to one column per free place) and against the greedy baseline."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from app.services.matching.solver import (
    FitModel,
    MatchProblem,
    Weights,
    solve_greedy,
    solve_optimal,
    timezone_gap,
)

WEIGHTS = Weights(specialty=0.6, timezone=0.25, load=0.15)
TAGS = ["python", "go", "data", "design", "career", "ml", "web"]
OFFSETS = [-8.0, -5.0, 0.0, 1.0, 5.5, 9.0, 14.0]


def random_problem(rng: np.random.Generator, n: int, m: int, max_cap: int = 4) -> MatchProblem:
    def tags() -> frozenset[str]:
        return frozenset(rng.choice(TAGS, int(rng.integers(0, 4)), replace=False).tolist())

    return MatchProblem(
        mentee_ids=[uuid.uuid4() for _ in range(n)],
        mentee_tags=[tags() for _ in range(n)],
        mentee_offsets=rng.choice(OFFSETS, n),
        mentor_ids=[uuid.uuid4() for _ in range(m)],
        mentor_tags=[tags() for _ in range(m)],
        mentor_offsets=rng.choice(OFFSETS, m),
        mentor_active=rng.integers(0, 3, m),
        mentor_max=rng.integers(0, max_cap + 1, m),
    )


def exact_optimum(model: FitModel) -> tuple[int, int]:
    """(placements, total scaled fit) of the best assignment, via the expanded matrix."""
    problem = model.problem
    slots = np.repeat(np.arange(len(problem.mentor_ids)), problem.remaining)
    if not len(slots) or not problem.mentee_ids:
        return 0, 0
    dense = model.block(np.arange(len(problem.mentee_ids)), slots)
    rows, cols = linear_sum_assignment(dense, maximize=True)
    return len(rows), int(dense[rows, cols].sum())


def assert_valid(problem: MatchProblem, matching) -> None:
    placed = matching.mentor_of[matching.mentor_of >= 0]
    counts = np.bincount(placed, minlength=len(problem.mentor_ids))
    assert (counts <= problem.remaining).all(), "a mentor got more mentees than free places"
    assert matching.placed == min(len(problem.mentee_ids), int(problem.remaining.sum()))


INSTANCES = [(seed, n, m) for seed, (n, m) in enumerate(
    [(1, 1), (3, 1), (5, 2), (8, 3), (12, 4), (12, 5), (10, 6), (14, 3), (6, 6), (2, 5)] * 6
)]


class TestOptimalMatching:
    @pytest.mark.parametrize(("seed", "n", "m"), INSTANCES)
    def test_total_fit_is_the_optimum_and_beats_greedy(self, seed: int, n: int, m: int) -> None:
        model = FitModel(random_problem(np.random.default_rng(seed), n, m), WEIGHTS)
        optimal = solve_optimal(model, top_k=m, block_rows=3)  # K covers everyone: exact
        greedy = solve_greedy(model, top_k=m, block_rows=3)
        placements, best = exact_optimum(model)
        assert_valid(model.problem, optimal)
        assert_valid(model.problem, greedy)
        assert optimal.placed == placements
        assert optimal.total_fit_scaled == best
        assert optimal.total_fit_scaled >= greedy.total_fit_scaled

    def test_greedy_can_be_strictly_worse(self) -> None:
        """The instance where greedy takes the best pair and loses overall."""
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4(), uuid.uuid4()],
            mentee_tags=[frozenset({"python", "go"}), frozenset({"python"})],
            mentee_offsets=np.zeros(2),
            mentor_ids=[uuid.uuid4(), uuid.uuid4()],
            mentor_tags=[frozenset({"python", "go"}), frozenset({"go"})],
            mentor_offsets=np.zeros(2),
            mentor_active=np.zeros(2, np.int64),
            mentor_max=np.ones(2, np.int64),
        )
        model = FitModel(problem, Weights(specialty=1.0, timezone=0.0, load=0.0))
        optimal = solve_optimal(model, top_k=2)
        greedy = solve_greedy(model, top_k=2)
        # greedy: mentee 0 -> mentor 0 (1.0), mentee 1 -> mentor 1 (0.0): 1.0
        # optimal: mentee 0 -> mentor 1 (0.5), mentee 1 -> mentor 0 (1.0): 1.5
        assert greedy.total_fit == pytest.approx(1.0)
        assert optimal.total_fit == pytest.approx(1.5)
        assert optimal.mentor_of.tolist() == [1, 0]

    @pytest.mark.parametrize("seed", range(12))
    def test_partial_top_k_still_places_everyone_placeable(self, seed: int) -> None:
        """With K below the number of mentors, the catch-all route keeps every placeable
        mentee placed (tight capacity forces mentees outside their top-K)."""
        rng = np.random.default_rng(100 + seed)
        problem = random_problem(rng, 60, 15, max_cap=6)
        model = FitModel(problem, WEIGHTS)
        for top_k in (1, 2, 5):
            optimal = solve_optimal(model, top_k=top_k, block_rows=16)
            assert_valid(problem, optimal)
            placements, best = exact_optimum(model)
            assert optimal.placed == placements
            assert optimal.total_fit_scaled <= best

    def test_no_free_place_places_nobody(self) -> None:
        problem = random_problem(np.random.default_rng(7), 5, 3)
        problem.mentor_max = problem.mentor_active.copy()
        matching = solve_optimal(FitModel(problem, WEIGHTS), top_k=30)
        assert matching.placed == 0
        assert (matching.mentor_of == -1).all()


class TestFit:
    def test_timezone_gap_is_circular(self) -> None:
        gaps = timezone_gap(np.array([14.0, -11.0, 5.5]), np.array([-11.0, 0.0]))
        assert gaps.tolist() == [[1.0, 10.0], [0.0, 11.0], [7.5, 5.5]]

    def test_pair_fits_match_the_block(self) -> None:
        problem = random_problem(np.random.default_rng(3), 9, 4)
        model = FitModel(problem, WEIGHTS)
        block = model.block(np.arange(9), np.arange(4))
        rows, cols = np.divmod(np.arange(36), 4)
        assert model.pairs(rows, cols).tolist() == block.ravel().tolist()
        assert (block >= 0).all() and (block <= 1000).all()

    def test_reasons(self) -> None:
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4()], mentee_tags=[frozenset({"python", "data", "art"})],
            mentee_offsets=np.array([1.0]),
            mentor_ids=[uuid.uuid4()], mentor_tags=[frozenset({"python", "data", "go"})],
            mentor_offsets=np.array([-1.0]),
            mentor_active=np.array([3]), mentor_max=np.array([20]),
        )
        model = FitModel(problem, WEIGHTS)
        (reasons,) = model.reasons(np.array([0]), np.array([0]))
        assert reasons == ["specialty:data", "specialty:python", "timezone_diff:2h", "load:3/20"]
        # 2/3 of the interests, 2 h apart, 3 of 20 places taken
        expected = (0.6 * 2 / 3 + 0.25 * (1 - 2 / 12) + 0.15 * (1 - 3 / 20)) / 1.0
        assert model.pairs(np.array([0]), np.array([0]))[0] == round(expected * 1000)

    def test_reasons_of_many_pairs(self) -> None:
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4() for _ in range(3)],
            mentee_tags=[frozenset({"go"}), frozenset(), frozenset({"ml", "data"})],
            mentee_offsets=np.array([5.5, -8.0, 14.0]),
            mentor_ids=[uuid.uuid4(), uuid.uuid4()],
            mentor_tags=[frozenset({"go", "ml"}), frozenset({"data", "ml"})],
            mentor_offsets=np.array([0.0, -10.0]),
            mentor_active=np.array([0, 19]), mentor_max=np.array([2, 20]),
        )
        model = FitModel(problem, WEIGHTS)
        assert model.reasons(np.array([0, 1, 2, 2]), np.array([1, 0, 1, 0])) == [
            ["timezone_diff:8.5h", "load:19/20"],
            ["timezone_diff:8h", "load:0/2"],
            ["specialty:data", "specialty:ml", "timezone_diff:0h", "load:19/20"],
            ["specialty:ml", "timezone_diff:10h", "load:0/2"],
        ]
