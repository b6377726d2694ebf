# %% [markdown]
# # In-situ training on the array (seed 002, Li et al. 2018)
#
# A 64-54-10 network lives on differential pairs of the simulated 256×256 HfO2 1T1R array.
# The forward pass runs *in the array* (batched `VMM?`), the gradient is computed in
# software from what the array produced, and the update is sent as open-loop pulses
# (RESET, then a SET whose gate voltage sets the new conductance; no verify). Devices
# stuck OFF stay in the loop, so the network learns around them — where a network trained
# in software and then programmed onto the same chip (ex-situ) cannot.
#
# Small settings keep this walk-through quick (the test suite runs it); the full figures
# come from `python benchmarks/bench_insitu.py --sweep --png fig.png`.
# Run it as a script or open it with jupytext.

# %%
import memprog
from memprog.jobs.insitu import (
    InsituParams,
    bench_with_stuck_fraction,
    exsitu_transfer,
    load_dataset,
    train_insitu,
)

EPOCHS = 2  # the benchmark figures: 8
LIMIT_TRAIN = None  # all 1,347 training images (one epoch takes about a second)
data = load_dataset("digits", seed=0, limit_train=LIMIT_TRAIN)
print(f"digits: {len(data.x_train)} training, {len(data.x_test)} test images, 64 inputs")

# %% [markdown]
# ## Training with seed 002's 11 % stuck devices
#
# The stuck fraction reaches the simulated chip through the bench file (`chip.sim_params`
# of a temporary copy); the training code never learns which devices are stuck. Before
# training, the job measures the gate → conductance line on spare rows (seed 002 Fig. 3d).

# %%
params = InsituParams(epochs=EPOCHS, seed=0)
with bench_with_stuck_fraction("sim_onchip", 0.11) as path:
    with memprog.open_bench(path) as bench:
        res = train_insitu(bench, params, data, stuck_fraction=0.11)
        stuck = ~bench.sim_chip.working_mask  # truth, only to show it
cal = res.calibration
print(
    f"gate calibration: {cal['slope_us_per_v']:.0f} µS/V, "
    f"{cal['responsive_fraction']:.0%} of the calibration cells responsive"
)
for row in res.history:
    print(
        f"epoch {row['epoch']}: loss {row['loss']:.3f}, test accuracy {row['test_accuracy']:.3f}, "
        f"wall {row['wall_s']:.2f} s, bench time {row['bench_s']:.3f} s"
    )
print(f"{res.pulses} pulses, {stuck[:120, :128].mean():.1%} of the network's devices stuck")
assert res.test_accuracy > 0.6

# %%
import matplotlib.pyplot as plt

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
ep = [h["epoch"] for h in res.history]
ax0.plot(ep, [h["test_accuracy"] for h in res.history], "o-", label="test")
ax0.plot(ep, [h["train_accuracy"] for h in res.history], "s--", label="train")
ax0.set_xlabel("epoch")
ax0.set_ylabel("accuracy")
ax0.legend()
ax0.set_title("in-situ, 11 % stuck")
w1 = res.weights[0][:-1]
ax1.imshow(w1.T, aspect="auto", cmap="RdBu_r", vmin=-4, vmax=4)
ax1.set_xlabel("input pixel")
ax1.set_ylabel("hidden neuron")
ax1.set_title("layer-1 weights (targets)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Seed 002 Fig. 4b in miniature: half the devices stuck
#
# The same chip seed with 50 % stuck devices: in-situ training against an ex-situ transfer
# (a network trained in software with torch, mapped min-max onto differential pairs,
# programmed by write-verify with `program_array`, run by `VMM?`).

# %%
with bench_with_stuck_fraction("sim_onchip", 0.5) as path:
    with memprog.open_bench(path) as bench:
        ins = train_insitu(bench, params.model_copy(update={"epochs": 3}), data, stuck_fraction=0.5)
    with memprog.open_bench(path) as bench:
        ex = exsitu_transfer(bench, params, data, software_epochs=20)
print(f"50 % stuck: in-situ {ins.test_accuracy:.3f}")
print(
    f"            ex-situ {ex['chip_accuracy']:.3f} (software {ex['software_accuracy']:.3f}, "
    f"{ex['cells_converged']}/{ex['cells']} cells reached their targets)"
)
assert ins.test_accuracy > 0.6  # seed 002: over 60 % with half the devices stuck
