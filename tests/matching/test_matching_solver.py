"""The matcher's optimisation against an exact solver (scipy's linear_sum_assignment on the
matrix expanded to one column per free place) and against the greedy baseline."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from app.services.matching.explain import explain
from app.services.matching.fit import FitModel, MatchProblem, timezone_gap
from app.services.matching.solver import solve_greedy, solve_optimal
from app.services.matching.weights import Weights

WEIGHTS = Weights(specialty=0.6, timezone=0.25, load=0.15)
WEIGHTS_WITH_LANGUAGE = Weights(specialty=0.5, timezone=0.2, load=0.15, language=0.15)
LANGUAGES = ["en", "fr", "es", "pt"]
TAGS = ["python", "go", "data", "design", "career", "ml", "web"]
OFFSETS = [-8.0, -5.0, 0.0, 1.0, 5.5, 9.0, 14.0]


def random_problem(rng: np.random.Generator, n: int, m: int, max_cap: int = 4,
                   rich: bool = False) -> MatchProblem:
    """Random mentees and mentors; `rich` adds languages, preferred mentors and
    specialties, and time-zone limits for about half the mentees."""
    def tags(pool: list[str] = TAGS, most: int = 4) -> frozenset[str]:
        return frozenset(rng.choice(pool, int(rng.integers(0, most)), replace=False).tolist())

    base = _base(rng, n, m, max_cap, tags)
    if rich:
        # Some people's offsets move by an hour in July (DST), so the gap is the year's worst.
        for side, size in (("mentee_offsets", n), ("mentor_offsets", m)):
            january = base[side]
            base[side] = np.stack([january, january + (rng.random(size) < 0.3)], axis=1)
        base |= {
            "mentee_languages": [tags(LANGUAGES, 3) for _ in range(n)],
            "mentor_languages": [tags(LANGUAGES, 3) for _ in range(m)],
            "mentee_preferred_tags": [tags(TAGS, 3) for _ in range(n)],
            "mentee_preferred_mentors": [
                tuple(rng.choice(m, int(rng.integers(0, min(m, 2) + 1)), replace=False))
                for _ in range(n)],
            "mentee_limits": np.where(rng.random(n) < 0.5,
                                      rng.choice([0.0, 1.0, 3.0, 5.5, 8.0], n), np.inf),
        }
    return MatchProblem(**base)


def _base(rng, n, m, max_cap, tags) -> dict:
    return dict(
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
    """(placements, total scaled fit) of the best assignment, via the expanded matrix (one
    column per free place). Placements come first: each allowed pair earns a bonus larger
    than any total fit; a pair a limit forbids (fit -1) earns nothing and places nobody."""
    problem = model.problem
    slots = np.repeat(np.arange(len(problem.mentor_ids)), problem.remaining)
    if not len(slots) or not problem.mentee_ids:
        return 0, 0
    dense = model.block(np.arange(len(problem.mentee_ids)), slots)
    bonus = 2000 * len(problem.mentee_ids) + 1
    allowed = dense >= 0
    rows, cols = linear_sum_assignment(np.where(allowed, dense + bonus, 0), maximize=True)
    taken = allowed[rows, cols]
    return int(taken.sum()), int(dense[rows, cols][taken].sum())


def assert_valid(problem: MatchProblem, matching, placements: int | None = None) -> None:
    placed = matching.mentor_of[matching.mentor_of >= 0]
    counts = np.bincount(placed, minlength=len(problem.mentor_ids))
    assert (counts <= problem.remaining).all(), "a mentor got more mentees than free places"
    if placements is None:
        placements = min(len(problem.mentee_ids), int(problem.remaining.sum()))
    assert matching.placed == placements
    # Never a pair the mentee's time-zone limit forbids.
    e = np.flatnonzero(matching.mentor_of >= 0)
    assert (matching.fit[e] >= 0).all()


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

    def test_components_and_reasons(self) -> None:
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4()], mentee_tags=[frozenset({"python", "data", "art"})],
            mentee_offsets=np.array([1.0]),
            mentor_ids=[uuid.uuid4()], mentor_tags=[frozenset({"python", "data", "go"})],
            mentor_offsets=np.array([-1.0]),
            mentor_active=np.array([3]), mentor_max=np.array([20]),
        )
        model = FitModel(problem, WEIGHTS)
        explained = explain(model, np.array([0]), np.array([0]))
        assert explained.reasons == [["specialty: data, python", "timezone: 2 h apart",
                                      "load: 3 of 20 mentees"]]
        # 2/3 of the interests, 2 h apart, 3 of 20 places taken; no language named: 1
        parts = {"specialty": 0.6 * 2 / 3, "timezone": 0.25 * (1 - 2 / 12),
                 "load": 0.15 * (1 - 3 / 20), "language": 0.0, "preference": 0.0}
        for term, value in parts.items():
            assert explained.components[term][0] == pytest.approx(value)
        assert model.pairs(np.array([0]), np.array([0]))[0] == round(sum(parts.values()) * 1000)

    def test_reasons_of_many_pairs(self) -> None:
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4() for _ in range(3)],
            mentee_tags=[frozenset({"go"}), frozenset(), frozenset({"ml", "data"})],
            mentee_offsets=np.array([5.5, -8.0, 14.0]),
            mentor_ids=[uuid.uuid4(), uuid.uuid4()],
            mentor_tags=[frozenset({"go", "ml"}), frozenset({"data", "ml"})],
            mentor_offsets=np.array([0.0, -10.0]),
            mentor_active=np.array([0, 19]), mentor_max=np.array([2, 20]),
            mentee_languages=[frozenset({"en"}), frozenset(), frozenset({"fr"})],
            mentor_languages=[frozenset({"en", "fr"}), frozenset()],
            mentee_preferred_mentors=[(1,), (), ()],
            mentee_preferred_tags=[frozenset(), frozenset(), frozenset({"ml"})],
        )
        model = FitModel(problem, WEIGHTS_WITH_LANGUAGE, preference_boost=0.1)
        assert explain(model, np.array([0, 1, 2, 2]), np.array([1, 0, 1, 0])).reasons == [
            ["timezone: 8.5 h apart", "load: 19 of 20 mentees",
             "language: not listed by mentor", "preference: preferred mentor"],
            ["timezone: 8 h apart", "load: 0 of 2 mentees"],
            ["specialty: data, ml", "timezone: 0 h apart", "load: 19 of 20 mentees",
             "language: not listed by mentor", "preference: ml"],
            ["specialty: ml", "timezone: 10 h apart", "load: 0 of 2 mentees", "language: fr",
             "preference: ml"],
        ]


class TestPreferencesLanguagesAndLimits:
    """The new terms and the hard limit, against the exact solver too."""

    @pytest.mark.parametrize(("seed", "n", "m"), INSTANCES[:40])
    def test_optimum_with_every_term_and_the_limit(self, seed: int, n: int, m: int) -> None:
        rng = np.random.default_rng(1000 + seed)
        model = FitModel(random_problem(rng, n, m, rich=True), WEIGHTS_WITH_LANGUAGE,
                         preference_boost=0.1)
        placements, best = exact_optimum(model)
        optimal = solve_optimal(model, top_k=m, block_rows=3)
        greedy = solve_greedy(model, top_k=m, block_rows=3)
        assert_valid(model.problem, optimal, placements)
        assert optimal.total_fit_scaled == best
        assert greedy.placed <= placements
        if greedy.placed == placements:
            assert optimal.total_fit_scaled >= greedy.total_fit_scaled

    @pytest.mark.parametrize("seed", range(12))
    def test_partial_top_k_with_limits_places_the_most(self, seed: int) -> None:
        """Tight places, time-zone limits and K below the mentors: the group hubs keep
        every mentee who can be placed placed, never across a limit."""
        rng = np.random.default_rng(200 + seed)
        problem = random_problem(rng, 60, 15, max_cap=6, rich=True)
        model = FitModel(problem, WEIGHTS_WITH_LANGUAGE, preference_boost=0.1)
        placements, best = exact_optimum(model)
        for top_k in (1, 2, 5):
            optimal = solve_optimal(model, top_k=top_k, block_rows=16)
            assert_valid(problem, optimal, placements)
            assert optimal.total_fit_scaled <= best

    def test_the_limit_is_hard_even_when_it_leaves_a_mentee_out(self) -> None:
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4(), uuid.uuid4()], mentee_tags=[frozenset()] * 2,
            mentee_offsets=np.array([0.0, 0.0]),
            mentor_ids=[uuid.uuid4(), uuid.uuid4()], mentor_tags=[frozenset()] * 2,
            mentor_offsets=np.array([1.0, 9.0]),
            mentor_active=np.zeros(2, np.int64), mentor_max=np.ones(2, np.int64),
            mentee_limits=np.array([2.0, 2.0]),
        )
        model = FitModel(problem, WEIGHTS)
        for top_k in (1, 2):
            matching = solve_optimal(model, top_k=top_k)
            assert matching.placed == 1 and 1 not in matching.mentor_of.tolist()

    def test_a_limit_placements_need_is_kept_over_a_better_fit(self) -> None:
        """Mentee 0 fits mentor 0 best, but mentee 1 may only take mentor 0: placing both
        comes first (mentee 0 goes to mentor 1)."""
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4(), uuid.uuid4()], mentee_tags=[frozenset({"go"}),
                                                                 frozenset()],
            mentee_offsets=np.array([0.0, 0.0]),
            mentor_ids=[uuid.uuid4(), uuid.uuid4()],
            mentor_tags=[frozenset({"go"}), frozenset()],
            mentor_offsets=np.array([0.0, 11.0]),
            mentor_active=np.zeros(2, np.int64), mentor_max=np.ones(2, np.int64),
            mentee_limits=np.array([np.inf, 3.0]),
        )
        matching = solve_optimal(FitModel(problem, WEIGHTS), top_k=2)
        assert matching.mentor_of.tolist() == [1, 0]

    def test_the_gap_is_the_largest_over_the_year(self) -> None:
        """London (0 / +1) and New York (-5 / -4) are 5 h apart all year; London and
        Sydney (+11 / +10) are 11 h and 9 h apart: the gap is 11."""
        gaps = timezone_gap(np.array([[0.0, 1.0]]), np.array([[-5.0, -4.0], [11.0, 10.0]]))
        assert gaps.tolist() == [[5.0, 11.0]]

    def test_language_term_defaults(self) -> None:
        problem = MatchProblem(
            mentee_ids=[uuid.uuid4(), uuid.uuid4()], mentee_tags=[frozenset()] * 2,
            mentee_offsets=np.zeros(2),
            mentor_ids=[uuid.uuid4() for _ in range(3)], mentor_tags=[frozenset()] * 3,
            mentor_offsets=np.zeros(3), mentor_active=np.zeros(3, np.int64),
            mentor_max=np.ones(3, np.int64),
            mentee_languages=[frozenset({"pt"}), frozenset()],
            mentor_languages=[frozenset({"pt", "en"}), frozenset({"en"}), frozenset()],
        )
        only_language = Weights(specialty=0, timezone=0, load=0, language=1)
        block = FitModel(problem, only_language).block(np.arange(2), np.arange(3))
        # shared / none shared / mentor lists none; a mentee naming none: 1 everywhere
        assert block.tolist() == [[1000, 0, 500], [1000, 1000, 1000]]

    def test_preferences_raise_fit(self) -> None:
        plain = random_problem(np.random.default_rng(5), 4, 3)
        model = FitModel(plain, WEIGHTS, preference_boost=0.1)
        before = model.block(np.arange(4), np.arange(3))
        plain.mentee_preferred_mentors = [(2,), (), (), ()]
        plain.mentee_preferred_tags = [frozenset(), frozenset(plain.mentor_tags[0]) or
                                       frozenset({"python"}), frozenset(), frozenset()]
        after = FitModel(plain, WEIGHTS, preference_boost=0.1).block(np.arange(4),
                                                                     np.arange(3))
        assert after[0, 2] == before[0, 2] + 100
        assert (after >= before).all()
        assert after[2:].tolist() == before[2:].tolist()
