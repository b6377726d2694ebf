"""Small weight files the tests program: one recipe each, so every test writes the same."""

from __future__ import annotations

from pathlib import Path

import torch

from memprog.hwaware.mapping import save_weights


def save_moons_weights(path: Path, source: str = "preset:tio2_passive", seed: int = 7) -> Path:
    """A random (untrained) 2-8-1 half-moons network as a ``memprog.weights/1`` file."""
    g = torch.Generator().manual_seed(seed)
    save_weights(
        {
            "format": "memprog.weights/1", "dataset": "halfmoons", "sizes": [2, 8, 1],
            "activation": "sigmoid", "output": "sigmoid",
            "state_dict": {"layers.0.weight": 4 * torch.randn(8, 2, generator=g), "layers.0.bias": torch.randn(8, generator=g),
                           "layers.1.weight": 4 * torch.randn(1, 8, generator=g), "layers.1.bias": torch.randn(1, generator=g)},
            "mapping": {"scheme": "differential", "g_min_us": 100.0, "g_max_us": 400.0},
            "hardware_aware": False, "seed": 0, "epochs": 0, "variability_source": source,
        },
        path,
    )  # fmt: skip
    return path


def save_random_net(path: Path, sizes: tuple[int, ...] = (12, 10, 4), seed: int = 0) -> Path:
    """A random plain state dict (``fc{k}.weight`` / ``fc{k}.bias``) of the given widths."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        sd[f"fc{k}.weight"] = torch.randn(b, a, generator=g)
        sd[f"fc{k}.bias"] = 0.3 * torch.randn(b, generator=g)
    torch.save(sd, path)
    return path
