# %% [markdown]
# # One lab script, three instrument stacks
#
# The same write-verify script programs cells through the on-chip controller (SCPI +
# binary blocks), the Keithley 4200A-SCS + 707B switch matrix (KXCI + TSP, V/3 biasing on
# a passive crossbar) and the B1500A + B1530A WGFMU (FLEX + the WGFMU library). Only the
# bench file changes; on a lab machine its `lab_*` twin talks to the real instruments.
# Run it as a script or open it with jupytext; the test suite executes it.

# %%
import numpy as np

import memprog
from memprog.protocols.alibart import tune_alibart

# bench -> (rows, cols, targets): the probe station has one device under its probes
JOBS = {
    "sim_onchip": ([0, 0], [0, 1], [300.0, 600.0]),
    "sim_k4200_707b": ([0, 0], [0, 1], [150.0, 300.0]),
    "sim_b1500_wgfmu": ([0], [0], [250.0]),
}

for bench_name, (rows, cols, targets) in JOBS.items():
    with memprog.open_bench(bench_name) as bench:
        res = tune_alibart(bench.programmer, rows=rows, cols=cols, targets_us=targets)
        info = bench.programmer.info
        print(
            f"{bench_name:16s} {info.technology:12s} targets {targets} -> "
            f"{np.round(res.final_us, 1)} µS in {res.pulses.tolist()} pulses, "
            f"bench time {bench.bench_time_s:.3f} s"
        )
    assert res.converged.all()
    assert np.all(np.abs(res.final_us - targets) <= res.tolerance_us)

# %% [markdown]
# ## Drolet's disturb, seen through the instruments
#
# Programming the 8×8 passive crossbar row by row: every later write half-selects the
# cells already programmed (V/3 scheme), so the first cells drift the most. The re-verify
# pass of `program_array` reads every cell again and records that drift.

# %%
from memprog.protocols.array import ArrayParams, program_array

levels = np.linspace(100, 400, 8)
r, c = np.divmod(np.arange(64), 8)
target_map = levels[(r + c) % 8].reshape(8, 8)
with memprog.open_bench("sim_k4200_707b") as bench:
    res = program_array(
        bench.programmer, target_map, ArrayParams(tolerance_min_us=0.0, max_reverify_passes=1)
    )
drift = res.extra["drift_us"]
for first, last in ((0, 16), (48, 64)):
    print(f"cells {first}-{last - 1}: mean |drift| {np.abs(drift[first:last]).mean():5.1f} µS")
assert np.abs(drift[:16]).mean() > np.abs(drift[48:]).mean()

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(res.extra["later_writes"], drift, "o", ms=4)
ax.axhline(0, color="k", lw=0.6)
ax.set_xlabel("cells programmed after this one")
ax.set_ylabel("drift at re-verify (µS)")
ax.set_title("V/3 half-select disturb on the 4200 + 707B bench")
fig.tight_layout()
fig.savefig("disturb_by_position.png", dpi=110)
plt.close(fig)
