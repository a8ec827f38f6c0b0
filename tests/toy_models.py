"""Models of our own that no registry knows: what `portproof check pkg.module:factory` and
`run_check(module=...)` are for. Imported by the tests, and by name from a CLI run in this folder."""

from __future__ import annotations

import torch
from torch import nn

VOCABULARY, FEATURES, TOKENS = 50, 8, 4


class TwoInputModel(nn.Module):
    """A float input and integer token ids (an embedding lookup, which float ids would break), two outputs."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, FEATURES)
        self.projection = nn.Linear(FEATURES, FEATURES)
        self.block = nn.Sequential(nn.Linear(FEATURES, 16), nn.GELU(), nn.Linear(16, FEATURES))
        self.head = nn.Linear(FEATURES, 5)

    def forward(self, features: torch.Tensor, token_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        if token_ids.dtype != torch.int64:
            raise TypeError(f"token ids arrived as {token_ids.dtype}, not int64")
        hidden = self.projection(features) + self.embedding(token_ids).mean(dim=1)
        hidden = hidden + self.block(hidden)
        return {"logits": self.head(hidden), "hidden": hidden}


def make_model() -> TwoInputModel:
    torch.manual_seed(0)
    return TwoInputModel()


def make_inputs(num_samples: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"features": torch.randn(num_samples, FEATURES, generator=generator),
            "token_ids": torch.randint(0, VOCABULARY, (num_samples, TOKENS), generator=generator)}


class DeclaresItsShape(nn.Module):
    """One input whose per-sample shape the module declares, so the family can make random inputs."""

    input_shape = (6,)

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(6, 3)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.layer(signal)


def make_declared() -> DeclaresItsShape:
    torch.manual_seed(1)
    return DeclaresItsShape()


class CrashesInBf16(nn.Module):
    """A vendor kernel that segfaults, as it shows: the process dies by SIGSEGV, but only for bf16 weights."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(6, 3)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        if self.layer.weight.dtype == torch.bfloat16:
            import ctypes

            ctypes.string_at(0)  # reads address 0: SIGSEGV
        return self.layer(signal)


def make_crashing() -> CrashesInBf16:
    torch.manual_seed(2)
    model = CrashesInBf16()
    model.input_shape = (6,)
    return model


class StuckInCpp(nn.Module):
    """A forward that never returns from C++ for long: a matmul loop (a hung driver call, as far as Python can tell)."""

    input_shape = (4,)

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        big = torch.ones(1500, 1500)
        for _ in range(100_000):
            big = torch.mm(big, big).clamp_(max=1.0)
        return self.layer(signal) + big[0, 0]


def make_stuck() -> StuckInCpp:
    return StuckInCpp()


class HangsInFp16(nn.Module):
    """A driver call that never returns, as it shows: the fp16 forward blocks for good; fp32 and bf16 run."""

    input_shape = (6,)

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(6, 3)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        if self.layer.weight.dtype == torch.float16:
            import threading

            print("stuck", flush=True)
            threading.Event().wait()
        return self.layer(signal)


def make_hanging() -> HangsInFp16:
    torch.manual_seed(3)
    return HangsInFp16()


class Chatty(nn.Module):
    """Prints on stdout at the file-descriptor level in every forward, as exporters and runtimes' C++ code do."""

    input_shape = (4,)

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        import os

        os.write(1, b"graph(%x : Float(1, 4)) = IR dump line\n")
        return self.layer(signal)


def make_chatty() -> Chatty:
    torch.manual_seed(4)
    return Chatty()


class DigitsClassifier(nn.Module):
    """A small classifier of scikit-learn's 8x8 handwritten digits, read as RGB images through timm's
    preprocessing (its pretrained_cfg); the tests train it before they check it."""

    pretrained_cfg = {"input_size": (3, 8, 8), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "crop_pct": 1.0,
                      "interpolation": "bilinear", "num_classes": 10}

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3 * 8 * 8, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(torch.relu(self.hidden(x.flatten(1))))}


def make_digits() -> DigitsClassifier:
    torch.manual_seed(0)
    return DigitsClassifier()


class Shift(nn.Module):
    """Adds `amount`: (x + 1000) - 1000 keeps nothing of x's fine digits in bf16 (its spacing at 1000 is 8)."""

    def __init__(self, amount: float):
        super().__init__()
        self.amount = amount

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.amount


class LosesDigitsInBf16(nn.Module):
    """Misses the 1% rule in bf16 because of one module, `cancel`; every other module is harmless there."""

    input_shape = (16,)

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.cancel = nn.Sequential(Shift(1000.0), Shift(-1000.0))
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.cancel(torch.tanh(self.stem(x))))}


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class OverflowsInFp16(nn.Module):
    """`amplify` scales activations past fp16's largest value (65504) and back: an identity in fp32, Inf in
    fp16. Keeping amplify.0 or amplify.1 alone in fp32 does not help (what passes between them is fp16, and
    overflows there): only amplify as a whole does."""

    input_shape = (16,)

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.amplify = nn.Sequential(Scale(1e5), Scale(1e-5))
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.amplify(self.stem(x)))}


class BrokenInLowPrecision(nn.Module):
    """NaN in every output whenever the model does not run in fp32, whatever its modules do: a broken kernel,
    not a matter of precision, so no set of modules kept in fp32 rescues it."""

    input_shape = (16,)

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(16, 10)
        self.register_buffer("marker", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.stem(x)
        return {"logits": out if self.marker.dtype == torch.float32 else out * float("nan")}


def make_loses_digits() -> LosesDigitsInBf16:
    torch.manual_seed(0)
    return LosesDigitsInBf16()


def make_overflowing() -> OverflowsInFp16:
    torch.manual_seed(0)
    return OverflowsInFp16()


def make_broken() -> BrokenInLowPrecision:
    torch.manual_seed(0)
    return BrokenInLowPrecision()


def make_segfaulting() -> nn.Module:
    """A factory that crashes its process while the model is built (a sweep's model process, then)."""
    import ctypes
    import os

    os.write(2, b"building a model that crashes\n")  # on stderr, as a C++ library says its last words
    ctypes.string_at(0)  # SIGSEGV
    raise AssertionError("unreachable")


def make_never_built() -> nn.Module:
    """A factory that never returns: only --timeout-per-model stops the sweep's model process."""
    import threading

    threading.Event().wait()
    raise AssertionError("unreachable")
