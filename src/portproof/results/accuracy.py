"""Task accuracy on labelled inputs (accuracy.py computes it): each side's top-1 / top-k, and how a target's
predictions changed against the reference's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Accuracy:
    """One side's accuracy over the labelled images it could read."""

    samples: int  # images evaluated
    correct_top1: int
    correct_top5: int
    top1: float  # correct_top1 / samples
    top5: float  # correct_top5 / samples (top-k with k the number of classes, when there are fewer than 5)
    unreadable: tuple[str, ...] = ()  # files that are not readable images, left out (the same on every side)


@dataclass(frozen=True)
class PredictionChange:
    """A sample whose top-1 class on the target differs from the reference's."""

    file: str  # relative to the inputs folder
    label: int
    reference: int
    target: int
    kind: str  # "right_to_wrong" | "wrong_to_right" | "wrong_to_wrong"


@dataclass(frozen=True)
class TargetAccuracy:
    accuracy: Accuracy
    ratio: float | None  # target top-1 / reference top-1; None when the reference got none right
    changed: int  # samples whose top-1 class differs from the reference's
    right_to_wrong: int
    wrong_to_right: int
    first_changes: tuple[PredictionChange, ...]  # the first few changes, in the order of the files
