"""What each training phase computes. The loop knows objectives only through
`ganvas.objectives.base.Objective`; a family picks its own with `Family.objective`."""

from __future__ import annotations

from ganvas.models.registry import Family
from ganvas.objectives.base import Feed, Objective, Phase, TrainingParts, judge, lazy_ratio
from ganvas.objectives.classic import ClassicObjective

__all__ = ["ClassicObjective", "Feed", "Objective", "Phase", "TrainingParts", "build_objective",
           "judge", "lazy_ratio"]  # fmt: skip


def build_objective(family: Family, parts: TrainingParts) -> Objective:
    """The family's own objective, or the classic one."""
    make = family.objective or ClassicObjective
    return make(parts)
