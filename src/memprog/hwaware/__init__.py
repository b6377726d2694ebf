"""Hardware-aware training: networks trained through simulated transfers onto the chip.

The loop closes here: characterisation runs fill the variability database
(:class:`memprog.store.VariabilityDB`), a :class:`VariabilityModel` turns its tables into
tensors, :class:`HardwareAwareLinear` layers train through sampled transfers, Monte Carlo
evaluation (:class:`TransferSimulator`) says how reliably each input survives a transfer, and
the weight file (Contract B, :mod:`memprog.hwaware.mapping`) carries what a program job needs.

Only :mod:`memprog.hwaware.mapping` is torch-free at import; the rest needs torch.
"""

from __future__ import annotations

from memprog.hwaware.mapping import (
    WEIGHTS_FORMAT,
    fold_bias,
    later_writes,
    load_weights,
    pairs_to_weights,
    save_weights,
    unfold_bias,
    weights_to_pairs,
)

__all__ = [
    "WEIGHTS_FORMAT",
    "fold_bias",
    "later_writes",
    "load_weights",
    "pairs_to_weights",
    "save_weights",
    "unfold_bias",
    "weights_to_pairs",
    "VariabilityModel",
    "HardwareAwareLinear",
    "MLP",
    "convert",
    "TransferSimulator",
    "TransferResult",
    "evaluate_transfers",
    "train",
]


def __getattr__(name: str):
    # torch-backed parts load on first use, so `memprog.hwaware.mapping` stays cheap for the
    # program job
    if name == "VariabilityModel":
        from memprog.hwaware.variability import VariabilityModel

        return VariabilityModel
    if name in ("HardwareAwareLinear", "MLP", "convert"):
        from memprog.hwaware import layers

        return getattr(layers, name)
    if name in ("TransferSimulator", "TransferResult", "evaluate_transfers"):
        from memprog.hwaware import transfer

        return getattr(transfer, name)
    if name == "train":
        from memprog.hwaware.training import train

        return train
    raise AttributeError(name)
