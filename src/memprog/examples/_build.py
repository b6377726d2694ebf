"""Rebuild the shipped digits example: ``python -m memprog.examples._build`` (scikit-learn).

A 64-54-10 network (Li 2018's in-situ network sizes), sigmoid hidden layer, softmax output,
trained in software with Adam on 80 % of scikit-learn's bundled 8x8 digits (no download),
split as :func:`memprog.hwaware.datasets.load_dataset` splits them (so ``memprog evaluate``'s
held-out set is the shipped test set), written by the one weight-file writer
(:func:`memprog.hwaware.mapping.save_weights`). Seeded: the same files every time on one
torch build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from memprog.hwaware.datasets import DATA_SEED, load_dataset
from memprog.hwaware.mapping import WEIGHTS_FORMAT, save_weights

HERE = Path(__file__).resolve().parent


def build(seed: int = 0, epochs: int = 300, out: Path = HERE) -> dict[str, float]:
    ds = load_dataset("digits", DATA_SEED)  # the one fixed split: its held-out set is ours
    xtr, ytr, xte, yte = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    torch.manual_seed(seed)
    layers = torch.nn.ModuleList([torch.nn.Linear(64, 54), torch.nn.Linear(54, 10)])
    opt = torch.optim.Adam(layers.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(epochs):
        perm = torch.randperm(xt.shape[0])
        for b in range(0, xt.shape[0], 128):
            idx = perm[b : b + 128]
            h = torch.sigmoid(layers[0](xt[idx]))
            loss = torch.nn.functional.cross_entropy(layers[1](h), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = layers[1](torch.sigmoid(layers[0](torch.from_numpy(xte)))).argmax(1).numpy()
    acc = float((pred == yte).mean())
    sd = {f"layers.{k}.{n}": p.detach().clone() for k, lin in enumerate(layers) for n, p in lin.named_parameters()}
    save_weights(
        {
            "format": WEIGHTS_FORMAT,
            "dataset": "digits",
            "sizes": [64, 54, 10],
            "activation": "sigmoid",
            "output": "softmax",
            "state_dict": sd,
            "mapping": {"scheme": "differential", "g_min_us": 50.0, "g_max_us": 500.0},
            "hardware_aware": False,
            "seed": seed,
            "epochs": epochs,
            "variability_source": "none (software training)",
        },
        out / "digits_64_54_10.pt",
    )
    np.savez_compressed(out / "digits_test.npz", x=xte, y=yte)
    return {"test_accuracy": acc, "train": int(xtr.shape[0]), "test": int(xte.shape[0])}


if __name__ == "__main__":
    print(build())
