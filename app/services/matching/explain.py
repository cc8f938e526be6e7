"""Why a pair fits: each weighted term of its fit (`components`) and the reasons a person
reads, in the one format of assignment reasons (app/services/relationships/reasons.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.services.matching.fit import FitModel
from app.services.relationships import reasons as why

COMPONENTS = ("specialty", "timezone", "load", "language", "preference")


@dataclass
class Explanation:
    components: dict[str, np.ndarray]  # term -> weighted value per pair (float64)
    reasons: list[list[str]]


def _shared(left: list[frozenset[str]], right: list[frozenset[str]]) -> list[list[str]]:
    return [sorted(a & b) for a, b in zip(left, right, strict=True)]


def explain(model: FitModel, mentees: np.ndarray, mentors: np.ndarray) -> Explanation:
    """Components and reasons of each pair (mentees[i], mentors[i])."""
    p, w = model.problem, model.weights
    e_list, m_list = mentees.tolist(), mentors.tolist()
    topics = [p.mentee_tags[e] | p.mentee_preferred_tags[e] for e in e_list]
    specialties = [p.mentor_tags[m] for m in m_list]
    shared = _shared(topics, specialties)
    wanted = _shared([p.mentee_preferred_tags[e] for e in e_list], specialties)
    mentee_langs = [p.mentee_languages[e] for e in e_list]
    mentor_langs = [p.mentor_languages[m] for m in m_list]
    shared_langs = _shared(mentee_langs, mentor_langs)
    preferred = [m in p.mentee_preferred_mentors[e] for e, m in zip(e_list, m_list,
                                                                     strict=True)]
    gap = model.gap[model.mentee_group[mentees], mentors]

    topic_count = np.array([max(len(t), 1) for t in topics], np.float64)
    wanted_count = np.array([max(len(p.mentee_preferred_tags[e]), 1) for e in e_list],
                            np.float64)
    language = np.array([1.0 if not ml or sl else (0.5 if not rl else 0.0)
                         for ml, rl, sl in zip(mentee_langs, mentor_langs, shared_langs,
                                               strict=True)])
    components = {
        "specialty": w.specialty * np.array([len(s) for s in shared]) / topic_count,
        "timezone": w.timezone * (1.0 - gap / 12.0),
        "load": model.load_term[mentors],
        "language": w.language * language,
        "preference": model.boost * (np.array(preferred, np.float64)
                                     + np.array([len(x) for x in wanted]) / wanted_count),
    }
    active, limit = p.mentor_active[mentors].tolist(), p.mentor_max[mentors].tolist()
    gaps = gap.tolist()
    reasons = []
    for i in range(len(e_list)):
        row = [why.specialty(shared[i])] if shared[i] else []
        row.append(why.timezone(gaps[i]))
        row.append(why.load(active[i], limit[i]))
        if mentee_langs[i]:
            row.append(why.language(shared_langs[i], mentor_lists_none=not mentor_langs[i]))
        if preferred[i]:
            row.append(why.PREFERRED_MENTOR)
        if wanted[i]:
            row.append(why.preferred_specialties(wanted[i]))
        reasons.append(row)
    return Explanation(components, reasons)
