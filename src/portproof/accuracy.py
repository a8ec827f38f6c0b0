"""Task accuracy on labelled inputs, from each side's top-5 classes per image: counting, nothing else. A
sample's top-1 is right when it equals the label, its top-5 when the label is among the five."""

from __future__ import annotations

from .labelled import LabelledImages
from .results import Accuracy, PredictionChange, TargetAccuracy
from .sides import Predictions

CHANGES_LISTED = 10  # changed predictions listed by file name in the result


def side_accuracy(predictions: Predictions, images: LabelledImages) -> Accuracy:
    """One side's top-1 and top-5 accuracy over the images it could read."""
    evaluated = [(top, label) for top, label, readable in zip(predictions.top, images.labels, predictions.readable)
                 if readable]
    top1 = sum(top[0] == label for top, label in evaluated)
    top5 = sum(label in top for top, label in evaluated)
    samples = len(evaluated)
    unreadable = tuple(f for f, readable in zip(images.files, predictions.readable) if not readable)
    return Accuracy(samples, top1, top5, top1 / samples if samples else 0.0, top5 / samples if samples else 0.0,
                    unreadable)


def target_accuracy(reference: Predictions, target: Predictions, images: LabelledImages,
                    reference_accuracy: Accuracy) -> TargetAccuracy:
    """The target's accuracy, its ratio to the reference's, and every image whose top-1 class changed."""
    own = side_accuracy(target, images)
    changes = []
    for file, label, ref, tgt, readable in zip(images.files, images.labels, reference.top, target.top, reference.readable):
        if readable and ref[0] != tgt[0]:
            kind = "right_to_wrong" if ref[0] == label else "wrong_to_right" if tgt[0] == label else "wrong_to_wrong"
            changes.append(PredictionChange(file, label, ref[0], tgt[0], kind))
    ratio = own.top1 / reference_accuracy.top1 if reference_accuracy.top1 else None
    return TargetAccuracy(own, ratio, len(changes), sum(c.kind == "right_to_wrong" for c in changes),
                          sum(c.kind == "wrong_to_right" for c in changes), tuple(changes[:CHANGES_LISTED]))
