# %% [markdown]
# # The simulated memristor chip
#
# A walk-through of the physics every memprog test and figure stands on. Run it as a
# script (`python notebooks/01_simulated_chip.py`) or open it as a notebook with jupytext;
# the test suite executes it.

# %%
import numpy as np

from memprog.sim_instruments import Effects, SimChip

chip = SimChip(64, 64, "hfo2_1t1r", seed=1)
print(f"{chip.rows}x{chip.cols} {chip.technology}: {np.mean(~chip.working_mask):.1%} unresponsive cells")

# %% [markdown]
# Identical SET pulses: steps shrink toward the bound (soft bounds), and a gate voltage
# caps the conductance a SET can reach (1T1R compliance).

# %%
quiet = SimChip(1, 1, "hfo2_1t1r", seed=2, effects=Effects(c2c=False, rtn=False, read_noise=False))
curve = []
for _ in range(30):
    quiet.pulse(0, 0, 1.2, 100e-9, gate_v=1.6)
    curve.append(quiet.true_conductance_us(0, 0)[0])
steps = np.diff(curve)
print("first steps (µS):", np.round(steps[:3], 1), " last steps:", np.round(steps[-3:], 2))
assert steps[0] > steps[-1] > 0

# %% [markdown]
# As-programmed states fluctuate (random telegraph noise); sub-threshold pulses remove
# the large fluctuator, as in Rao et al. 2023.

# %%
rows, cols = np.divmod(np.arange(chip.n_cells), chip.cols)
chip.pulse(rows, cols, 1.4, 100e-9, gate_v=1.2)


def spread(c: SimChip) -> np.ndarray:
    reads = []
    for _ in range(60):
        reads.append(c.read(rows, cols))
        c.advance(1e-3)
    return np.ptp(np.array(reads), axis=0)[c.working_mask.ravel()]


before = spread(chip)
for _ in range(10):
    chip.pulse(rows, cols, 0.55, 100e-9)
after = spread(chip)
print(f"cells with > 1 µS peak-to-peak: {np.mean(before > 1):.0%} before denoising, {np.mean(after > 1):.1%} after")
print(f"simulated bench time so far: {chip.clock_s * 1e3:.1f} ms")
