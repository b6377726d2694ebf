"""Hardware-aware training: networks trained through simulated transfers onto the chip.

The loop closes here: characterisation runs fill the variability database
(:class:`memprog.store.VariabilityDB`), a :class:`VariabilityModel` turns its tables into
tensors, :class:`HardwareAwareLinear` layers train through sampled transfers, Monte Carlo
evaluation (:class:`TransferSimulator`) says how reliably each input survives a transfer, and
the weight file (Contract B, :mod:`memprog.hwaware.mapping`) carries what a program job needs.

This package is also the one ML data layer every job stands on (jobs import it, never the
other way round): :mod:`~memprog.hwaware.datasets` is the one dataset loader (one documented
split, shared by ``train``, ``insitu`` and the shipped example), :mod:`~memprog.hwaware.mapping`
the one pair mapping and the one weight-file writer, :mod:`~memprog.hwaware.placement` and
:mod:`~memprog.hwaware.order` where the program job puts each weight and in which order it
writes them (what training keys each device's disturb by).

``datasets``, ``mapping``, ``placement`` and ``order`` are torch-free at import; the rest
needs torch.
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
        from memprog.hwaware.variability import VariabilityModel  # deferred: imports torch (~1 s)

        return VariabilityModel
    if name in ("HardwareAwareLinear", "MLP", "convert"):
        from memprog.hwaware import layers  # deferred: imports torch (~1 s)

        return getattr(layers, name)
    if name in ("TransferSimulator", "TransferResult", "evaluate_transfers"):
        from memprog.hwaware import transfer  # deferred: imports torch (~1 s)

        return getattr(transfer, name)
    if name == "train":
        from memprog.hwaware.training import train  # deferred: imports torch (~1 s)

        return train
    raise AttributeError(name)
