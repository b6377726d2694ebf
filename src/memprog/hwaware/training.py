"""Train a network, regular or hardware-aware, and package it as a Contract B weight dict.

Why a library function under the CLI: ``memprog train`` is a thin wrapper, and a lab script
or a test calls :func:`train` directly. Seed 001's protocol: Adam (lr 0.01), batch 256, binary
cross-entropy on the sigmoid output (cross-entropy on softmax for multi-class). Every random
choice — initial weights, batch order, sampled transfers — comes from the seed, so the same
seed gives the same weights.

The authors' code (3it-inpaqt/Hardware-Aware-Article), which produced the paper's 79.5 %,
trains with lr 0.1, weight decay 1e-4 and Xavier initialisation: ``PAPER_RECIPE`` holds
those settings, ``train(..., **PAPER_RECIPE)`` / ``memprog train --recipe paper`` use them.
Early stopping (``validate_every``) keeps the weights with the best *transfer-robust*
score on a validation split of the training points — the fraction of them classified
correctly in at least 95 % of simulated transfers, keyed as the chip will be programmed —
because the last epoch's ideal loss says nothing of how well the weights survive a transfer.

Stuck devices: a weight with a stuck device in a batch's transfer gets no gradient, and its
value is put back after the optimiser's step (Adam's moments, built by earlier batches,
would otherwise still move it): a stuck device ignores every update of that batch.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from memprog.core.errors import ConfigError
from memprog.hwaware.datasets import DATA_SEED, Dataset, load_dataset
from memprog.hwaware.layers import MLP, HardwareAwareLinear, convert, stuck_weight_fraction
from memprog.hwaware.mapping import BIAS_SCALES, WEIGHTS_FORMAT
from memprog.hwaware.order import network_later_writes
from memprog.hwaware.transfer import TransferSimulator
from memprog.hwaware.variability import VariabilityModel

# seed 001's authors train 10,000 epochs; at lr 0.01 the regular half-moons network leaves
# its near-linear plateau only after 3,000-10,000 epochs (measured), so fewer is not converged
DEFAULT_EPOCHS = {"halfmoons": 10000, "digits": 300}
# [Drolet code] the optimiser of the authors' own runs (3it-inpaqt/Hardware-Aware-Article)
PAPER_RECIPE: dict[str, Any] = {"lr": 0.1, "weight_decay": 1e-4, "init": "xavier", "epochs": 3000}
INITS = ("torch", "xavier")


@dataclass
class TrainResult:
    """The weight dict (Contract B) and how the training went."""

    weights: dict[str, Any]
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    wall_s: float = 0.0
    train_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    stuck_fraction: dict[str, float] = field(default_factory=dict)
    validations: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        w = self.weights
        return {
            "dataset": w["dataset"],
            "sizes": w["sizes"],
            "hardware_aware": w["hardware_aware"],
            "epochs": w["epochs"],
            "seed": w["seed"],
            "variability_source": w["variability_source"],
            "mapping": w["mapping"],
            "final_loss": self.losses[-1] if self.losses else None,
            "train_accuracy_ideal": self.train_accuracy,
            "test_accuracy_ideal": self.test_accuracy,
            "stuck_weight_fraction_per_batch": self.stuck_fraction,
            "recipe": w.get("recipe"),
            "disturb_layout": w.get("disturb_layout"),
            "validations": len(self.validations),
            "wall_s": self.wall_s,
        }


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        out = model(x)
        pred = (out[:, 0] >= 0).long() if out.shape[1] == 1 else out.argmax(1)
        return float((pred == y).float().mean())


def train(
    dataset: str | Dataset,
    variability: VariabilityModel,
    *,
    hardware_aware: bool = True,
    epochs: int | None = None,
    seed: int = 0,
    lr: float = 0.01,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
    weight_decay: float = 0.0,
    init: str = "torch",
    array_shape: tuple[int, int] | None = None,
    order: str = "row-major",
    validate_every: int = 0,
    validation_fraction: float = 0.2,
    validation_transfers: int = 200,
    patience: int | None = None,
    bias_scale: str = "own",
) -> TrainResult:
    """Train the dataset's network and return its weight dict.

    Args:
        dataset: ``"halfmoons"``, ``"digits"`` or a :class:`Dataset`.
        variability: the transfer model: sampled every batch when ``hardware_aware``; its
            working range goes into the weight file's ``mapping`` either way.
        hardware_aware: train through sampled transfers (else a regular network).
        epochs: passes over the training set (default per dataset, ``DEFAULT_EPOCHS``).
        seed: initial weights, batch order and sampled transfers.
        lr, batch_size: Adam's learning rate and the mini-batch size (seed 001: 0.01, 256).
        device: where to train (CPU default).
        progress: a progress bar on stderr.
        weight_decay: Adam's (L2) weight decay (the authors' code: 1e-4).
        init: ``"torch"`` (nn.Linear's default) or ``"xavier"`` (Xavier-uniform weights,
            zero biases, as the authors' code).
        array_shape: (rows, cols) of the chip the network will be programmed on: each
            device's disturb key is then the number of cells the program job writes after
            it there (:func:`memprog.hwaware.order.network_later_writes`, ``order``); None:
            each layer alone, row-major (no chip in view).
        order: the program job's order on that chip.
        validate_every: every so many epochs, score the weights on a held-out
            ``validation_fraction`` of the training points through ``validation_transfers``
            simulated transfers and keep the best (0: no validation, the last epoch's weights).
        patience: stop after this many validations without improvement (None: never stop).
        bias_scale: how the weight file maps each layer's biases, and so how training samples
            them: ``"own"`` (their own min-max scale, the weights on theirs; seed 001's authors
            scale them separately) or ``"folded"`` (the bias row on the layer's one scale).
            Written into ``mapping.bias_scale``; the program job computes it the same way
            (:func:`memprog.hwaware.mapping.chip_matrix`).
    """
    ds = load_dataset(dataset, DATA_SEED) if isinstance(dataset, str) else dataset
    epochs = DEFAULT_EPOCHS.get(ds.name, 100) if epochs is None else int(epochs)
    if epochs < 1:
        raise ConfigError("epochs", epochs, ">= 1")
    if batch_size < 1:
        raise ConfigError("batch_size", batch_size, ">= 1")
    if not lr > 0:
        raise ConfigError("lr", lr, "> 0")
    if not weight_decay >= 0:
        raise ConfigError("weight_decay", weight_decay, ">= 0")
    if bias_scale not in BIAS_SCALES:
        raise ConfigError("bias_scale", bias_scale, f"one of {BIAS_SCALES}")
    if init not in INITS:
        raise ConfigError("init", init, f"one of {INITS}")
    if validate_every < 0:
        raise ConfigError("validate_every", validate_every, ">= 0 epochs (0: no validation)")
    if validate_every and not 0 < validation_fraction < 1:
        raise ConfigError("validation_fraction", validation_fraction, "0 < fraction < 1")
    if validate_every and validation_transfers < 1:
        raise ConfigError("validation_transfers", validation_transfers, ">= 1")
    if patience is not None and patience < 1:
        raise ConfigError("patience", patience, ">= 1 validations (or None)")
    device = torch.device(device)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = MLP(ds.sizes, ds.activation, device=device)
        if init == "xavier":
            for layer in model.layers:
                torch.nn.init.xavier_uniform_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
    keys = None
    if array_shape is not None:
        keys = network_later_writes(ds.sizes, tuple(array_shape), order)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) + 1)
    if hardware_aware:
        convert(model, variability, generator=gen, later_writes=keys, bias_scale=bias_scale)
    x_all = torch.as_tensor(ds.x_train, device=device)
    y_all = torch.as_tensor(ds.y_train, device=device)
    x, y = x_all, y_all
    xv = yv = None
    if validate_every:
        split = np.random.default_rng(int(seed)).permutation(x_all.shape[0])
        n_val = max(1, int(round(validation_fraction * x_all.shape[0])))
        iv, it = torch.as_tensor(split[:n_val], device=device), torch.as_tensor(split[n_val:], device=device)
        x, y, xv, yv = x_all[it], y_all[it], x_all[iv], y_all[iv]
    target = y.float()[:, None] if ds.output == "sigmoid" else y
    loss_fn = F.binary_cross_entropy_with_logits if ds.output == "sigmoid" else F.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    freezer = _StuckFreezer(model) if hardware_aware else None
    best: tuple[tuple[float, float], int, dict[str, torch.Tensor]] | None = None
    since_best = 0
    validations: list[dict[str, float]] = []
    n = x.shape[0]
    losses: list[float] = []
    bar = None
    if progress:
        kind = "hardware-aware" if hardware_aware else "regular"
        bar = tqdm(total=epochs, desc=f"train {ds.name} ({kind})", unit="epoch", file=sys.stderr, leave=False)
    model.train()
    for _epoch in range(epochs):
        perm = torch.randperm(n, generator=gen, device=device)
        total = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), target[idx])
            loss.backward()
            if freezer is not None:
                freezer.step(opt)
            else:
                opt.step()
            total += loss.detach() * idx.numel()
        losses.append(float(total) / n)
        if validate_every and ((_epoch + 1) % validate_every == 0 or _epoch == epochs - 1):
            score = _robust_score(model, variability, keys, ds.activation, xv, yv, validation_transfers, seed,
                                  bias_scale)
            validations.append({"epoch": _epoch + 1, "fraction_95": score[0], "mean_accuracy": score[1]})
            if best is None or score > best[0]:
                state_now = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best, since_best = (score, _epoch + 1, state_now), 0
            else:
                since_best += 1
                if patience is not None and since_best >= patience:
                    break
        if bar is not None:
            bar.update(1)
            if _epoch % 50 == 0 or _epoch == epochs - 1:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    if bar is not None:
        bar.close()
    model.eval()
    best_epoch = None
    if best is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
    x, y = x_all, y_all
    xt = torch.as_tensor(ds.x_test, device=device)
    yt = torch.as_tensor(ds.y_test, device=device)
    state = {k: v.detach().cpu().float().clone() for k, v in model.state_dict().items()}
    weights = {
        "format": WEIGHTS_FORMAT,
        "dataset": ds.name,
        "sizes": list(ds.sizes),
        "activation": ds.activation,
        "output": ds.output,
        "state_dict": state,
        "mapping": {"scheme": "differential", "g_min_us": variability.g_min_us, "g_max_us": variability.g_max_us,
                    "bias_scale": bias_scale},
        "hardware_aware": bool(hardware_aware),
        "seed": int(seed),
        "epochs": int(epochs),
        "variability_source": variability.source,
        "recipe": {"lr": float(lr), "weight_decay": float(weight_decay), "init": init,
                   "batch_size": int(batch_size), "epochs_run": len(losses), "best_epoch": best_epoch},
        "disturb_layout": None if array_shape is None else {
            "array_shape": [int(array_shape[0]), int(array_shape[1])], "order": order, "copies": 1},
    }
    return TrainResult(
        weights=weights,
        losses=losses,
        wall_s=time.perf_counter() - t0,
        train_accuracy=_accuracy(model, x, y),
        test_accuracy=_accuracy(model, xt, yt),
        stuck_fraction=stuck_weight_fraction(model),
        validations=validations,
    )


class _StuckFreezer:
    """Optimiser steps that leave the weights with a stuck device where they were.

    Why not only a masked gradient: Adam's update is ``m / sqrt(v)`` from moments built by
    earlier batches, so a zero gradient still moves the weight (and weight decay adds its
    own pull). The weights of this batch's stuck devices are saved before the step and put
    back after it: no optimiser state moves them. Layers fused in one transfer group with a
    shared parameter storage are frozen by the group in one masked op (the cost of a
    hardware-aware step, issue 24); other layers one by one.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, HardwareAwareLinear) and m.variability is not None]
        self.active = any(
            m.variability.stuck_hrs_fraction + m.variability.stuck_lrs_fraction > 0 for m in self.layers
        )
        groups = {id(m._group): m._group for m in self.layers if m._group is not None}
        self.group = next(iter(groups.values())) if len(groups) == 1 else None
        self._only_group = self.group is not None and all(m._group is self.group for m in self.layers)

    def step(self, opt: torch.optim.Optimizer) -> None:
        if not self.active:
            opt.step()
            return
        if self._only_group and self.group.optimizer_step(opt):  # type: ignore[union-attr]
            return
        live = [m for m in self.layers if m.current_keep is not None]
        if not live:  # no stuck device in this batch's transfer
            opt.step()
            return
        params = [p for m in live for p in (m.weight, m.bias)]
        # masks in the parameters' dtype (a model moved to float64 keeps float32 masks)
        keeps = [k.to(p.dtype) for m in live for k, p in zip(m.current_keep, (m.weight, m.bias), strict=True)]  # type: ignore[arg-type]
        with torch.no_grad():
            saved = [p.detach().clone() for p in params]
        opt.step()
        with torch.no_grad():
            # saved + keep * (stepped - saved): stuck (keep 0) back to saved, others as stepped
            torch._foreach_lerp_(saved, [p.detach() for p in params], keeps)
            torch._foreach_copy_([p.detach() for p in params], saved)


def _robust_score(
    model: torch.nn.Module, variability: VariabilityModel, keys: list | None, activation: str,
    x: torch.Tensor, y: torch.Tensor, n_transfers: int, seed: int, bias_scale: str = "own",
) -> tuple[float, float]:
    """(fraction of points correct in >= 95 % of transfers, mean accuracy over transfers)."""
    layers = [(m.weight.detach(), m.bias.detach()) for m in model.layers]
    dev = x.device
    sim = TransferSimulator(layers, variability, activation=activation, device=dev, later_writes=keys,
                            bias_scale=bias_scale)
    # the same transfers at every validation (fixed seed): scores compare like for like
    r = sim.evaluate(x, y, n_transfers, seed=int(seed) + 7919)
    return r.fraction_at_least(95.0), float(r.transfer_accuracy.mean())


def held_out_set(weights: dict) -> tuple[np.ndarray, np.ndarray]:
    """The test points of the weight file's dataset (the fixed split every run uses)."""
    ds = load_dataset(weights["dataset"], DATA_SEED)
    return ds.x_test, ds.y_test
