"""The weights of the fit's terms: defaults from settings, per-run overrides, normalised.

Kept free of NumPy: the API validates and records a run's weights when it is requested."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from app.config import Settings
from app.core.errors import Unprocessable

TERMS = ("specialty", "timezone", "load", "language")


@dataclass(frozen=True, slots=True)
class Weights:
    specialty: float
    timezone: float
    load: float
    language: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Weights:
        return cls(settings.match_weight_specialty, settings.match_weight_timezone,
                   settings.match_weight_load, settings.match_weight_language)

    @property
    def total(self) -> float:
        return self.specialty + self.timezone + self.load + self.language

    def normalised(self) -> Weights:
        """The same weights scaled to sum 1 (the fit's weighted terms then lie in [0, 1])."""
        total = self.total
        return Weights(*(round(v / total, 6) for v in (self.specialty, self.timezone,
                                                         self.load, self.language)))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def resolve_weights(requested: Mapping[str, float] | None, settings: Settings) -> Weights:
    """A run's weights: the settings' defaults, overridden term by term by `requested`
    (a term left out keeps its default), then normalised to sum 1. Each weight must be a
    finite number >= 0 and at least one positive: otherwise 422 `invalid_weights`."""
    values = Weights.from_settings(settings).as_dict()
    for name, value in (requested or {}).items():
        if name not in TERMS:
            raise Unprocessable(f"Unknown weight {name!r}; the terms are {', '.join(TERMS)}",
                                code="invalid_weights")
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise Unprocessable(f"Weight {name!r} must be a finite number >= 0",
                                code="invalid_weights")
        values[name] = float(value)
    weights = Weights(**values)
    if weights.total <= 0:
        raise Unprocessable("At least one weight must be positive", code="invalid_weights")
    return weights.normalised()
