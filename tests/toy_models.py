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
