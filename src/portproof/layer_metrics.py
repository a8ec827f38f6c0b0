"""The metrics of one module output against the reference's, computed fast enough to run for every module call."""

from __future__ import annotations

import math

import torch

from .results.layers import LayerMetrics


class Scratch:
    """Reusable float32 buffers for layer_metrics. A fresh multi-megabyte temporary for every module
    output costs page faults that, measured, outweigh the arithmetic on it."""

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}

    def flat(self, tensor: torch.Tensor, slot: str, device: torch.device | None = None) -> torch.Tensor:
        """`tensor` flattened, as float32 on `device`: itself when it already is, else a copy in the slot."""
        tensor = tensor.detach()
        device = tensor.device if device is None else device
        if tensor.dtype == torch.float32 and tensor.device == device and tensor.is_contiguous():
            return tensor.view(-1)
        buffer = self._buffers.get(slot)
        if buffer is None or buffer.numel() < tensor.numel() or buffer.device != device:
            buffer = self._buffers[slot] = torch.empty(tensor.numel(), dtype=torch.float32, device=device)
        flat = buffer[: tensor.numel()]
        flat.view(tensor.shape).copy_(tensor)
        return flat

    def take(self, slot: str, like: torch.Tensor) -> torch.Tensor:
        buffer = self._buffers.get(slot)
        if buffer is None or buffer.numel() < like.numel() or buffer.device != like.device:
            buffer = self._buffers[slot] = torch.empty(like.numel(), dtype=torch.float32, device=like.device)
        return buffer[: like.numel()]


def layer_metrics(reference: torch.Tensor, target: torch.Tensor, reference_sq: float | None = None,
                  scratch: Scratch | None = None) -> LayerMetrics:
    """The accumulated/local metrics of one module output, with compare.py's conventions (non-finite
    elements counted and left out, both-zero cosine 1).

    This runs for every module call, so it is built for speed: float32 on the tensors' own device, one
    difference and five reductions, the sums combined in float64. Non-finite values show up in the sums,
    and only then is the slower masked path taken. `reference_sq`, ‖reference‖² when already known,
    saves a reduction (both modes compare against the same reference output).
    """
    shape, dtype = tuple(target.shape), str(target.dtype).replace("torch.", "")
    if reference.shape != target.shape:
        return LayerMetrics(target_shape=shape, target_dtype=dtype, error=f"shape {list(target.shape)} differs from {list(reference.shape)}")
    if reference.numel() == 0:
        return LayerMetrics(1.0, 0.0, 0.0, 0.0, 0, 0, shape, dtype)
    scratch = scratch or Scratch()
    ref = scratch.flat(reference, "reference")
    tgt = scratch.flat(target, "target", ref.device)
    diff = torch.sub(tgt, ref, out=scratch.take("difference", ref))
    err2, cross = torch.dot(diff, diff), torch.dot(ref, diff)  # BLAS dots: the fastest reductions measured
    magnitude = diff.abs_()  # in place: the signed difference is not needed any more
    ref_dot = torch.dot(ref, ref) if reference_sq is None else err2
    err2, cross, abs_sum, max_abs, ref2 = torch.stack([err2, cross, magnitude.sum(), magnitude.max(), ref_dot]).double().tolist()
    ref2 = ref2 if reference_sq is None else reference_sq
    counts = (0, 0)
    if not all(map(math.isfinite, (ref2, err2, cross))):
        ref_finite, tgt_finite = torch.isfinite(ref), torch.isfinite(tgt)
        counts = tuple(torch.stack([(~ref_finite).sum(), (~tgt_finite).sum()]).tolist())
        keep = ref_finite & tgt_finite
        if not bool(keep.any()):
            return LayerMetrics(None, None, None, None, counts[0], counts[1], shape, dtype)
        ref, diff = ref[keep].double(), tgt[keep].double() - ref[keep].double()
        ref2, err2, cross = float(ref.dot(ref)), float(diff.dot(diff)), float(ref.dot(diff))
        abs_sum, max_abs = float(diff.abs().sum()), float(diff.abs().max())
    tgt2 = max(ref2 + 2 * cross + err2, 0.0)  # ‖t‖² = ‖r + d‖², without cancellation when d is small
    if ref2 == 0 and tgt2 == 0:
        cosine = 1.0
    elif ref2 == 0 or tgt2 == 0:
        cosine = 0.0
    else:
        cosine = max(-1.0, min(1.0, (ref2 + cross) / math.sqrt(ref2 * tgt2)))
    rel_l2 = math.sqrt(err2 / ref2) if ref2 > 0 else (0.0 if err2 == 0 else math.inf)
    elements = ref.numel()
    return LayerMetrics(cosine, rel_l2, max_abs, abs_sum / elements, counts[0], counts[1], shape, dtype, None, math.sqrt(ref2))
