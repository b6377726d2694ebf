"""Write the Jupyter notebooks of this folder from the cell sources below, and run them.

The ``.ipynb`` files are what a user opens (``pip install -e ".[notebooks]" && jupyter lab
notebooks/``) and they are committed WITH their outputs, so a reader sees the figures
without running anything; this script keeps their sources reviewable as plain text.

    python notebooks/_make_ipynb.py            # write the sources (outputs cleared)
    python notebooks/_make_ipynb.py --execute  # write, then run each and store its outputs

Each notebook runs at its shipped settings on fresh simulated chips (a throw-away
``MEMPROG_SIM_STATE_DIR``) and a throw-away run store; the test suite runs them the same
way (``tests/house/test_notebooks_ipynb.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SIMCHIP = [
    ("md", """# The simulated memristor chip

A walk-through of the physics every memprog test and figure stands on. The test suite
executes it."""),
    ("code", '''import numpy as np

from memprog.sim_instruments import Effects, SimChip

chip = SimChip(64, 64, "hfo2_1t1r", seed=1)
print(f"{chip.rows}x{chip.cols} {chip.technology}: {np.mean(~chip.working_mask):.1%} unresponsive cells")'''),
    ("md", """Identical SET pulses: steps shrink toward the bound (soft bounds), and a gate voltage
caps the conductance a SET can reach (1T1R compliance)."""),
    ("code", '''quiet = SimChip(1, 1, "hfo2_1t1r", seed=2, effects=Effects(c2c=False, rtn=False, read_noise=False))
curve = []
for _ in range(30):
    quiet.pulse(0, 0, 1.2, 100e-9, gate_v=1.6)
    curve.append(quiet.true_conductance_us(0, 0)[0])
steps = np.diff(curve)
print("first steps (µS):", np.round(steps[:3], 1), " last steps:", np.round(steps[-3:], 2))
assert steps[0] > steps[-1] > 0'''),
    ("md", """As-programmed states fluctuate (random telegraph noise); sub-threshold pulses remove
the large fluctuator, as in Rao et al. 2023."""),
    ("code", '''rows, cols = np.divmod(np.arange(chip.n_cells), chip.cols)
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
print(f"simulated bench time so far: {chip.clock_s * 1e3:.1f} ms")'''),
]

STACKS = [
    ("md", """# One lab script, three instrument stacks

The same write-verify script programs cells through the on-chip controller (SCPI +
binary blocks), the Keithley 4200A-SCS + 707B switch matrix (KXCI + TSP, V/3 biasing on
a passive crossbar) and the B1500A + B1530A WGFMU (FLEX + the WGFMU library). Only the
bench file changes; on a lab machine its `lab_*` twin talks to the real instruments. On the
passive crossbar every pulse puts a third of its voltage on the cells it does not select, so
a cell tuned first can be moved by the next one: the result reports what the chip holds at
the end (a cell moved out of its band is flagged `drifted_out`)."""),
    ("code", '''import numpy as np

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
    # what the result says is what the chip holds: on the passive crossbar the second cell's
    # pulses put V/3 on the first, which can leave its band; it is then flagged drifted_out
    ok = np.abs(res.final_us - targets) <= res.tolerance_us
    assert np.all(ok | res.has_flag("drifted_out")), res.flags
    assert ok.any()'''),
    ("md", """## Drolet's disturb, seen through the instruments

Programming the 8×8 passive crossbar row by row: every later write half-selects the
cells already programmed (V/3 scheme), so the first cells drift the most. The re-verify
pass of `program_array` reads every cell again and records that drift."""),
    ("code", '''from memprog.protocols.array import ArrayParams, program_array

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
assert np.abs(drift[:16]).mean() > np.abs(drift[48:]).mean()'''),
    ("code", '''import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(res.extra["later_writes"], drift, "o", ms=4)
ax.axhline(0, color="k", lw=0.6)
ax.set_xlabel("cells programmed after this one")
ax.set_ylabel("drift at re-verify (µS)")
ax.set_title("V/3 half-select disturb on the 4200 + 707B bench")
fig.tight_layout()
fig.savefig("disturb_by_position.png", dpi=110)
plt.close(fig)'''),
]

INSITU = [
    ("md", """# In-situ training on the array (seed 002, Li et al. 2018)

A 64-54-10 network lives on differential pairs of the simulated 256×256 HfO2 1T1R array.
The forward pass runs *in the array* (batched `VMM?`), the gradient is computed in
software from what the array produced, and the update is sent as open-loop pulses
(RESET, then a SET whose gate voltage sets the new conductance; no verify). Devices
stuck OFF stay in the loop, so the network learns around them — where a network trained
in software and then programmed onto the same chip (ex-situ) cannot.

Two epochs keep this walk-through quick; the full figures come from
`python benchmarks/bench_insitu.py --sweep --png fig.png`."""),
    ("code", '''import memprog
from memprog.hwaware.datasets import load_dataset
from memprog.jobs.insitu import bench_with_stuck_fraction, train_insitu
from memprog.jobs.insitu_exsitu import exsitu_transfer
from memprog.jobs.insitu_params import InsituParams

EPOCHS = 2  # the benchmark figures: 8
LIMIT_TRAIN = None  # all 1,438 training images (one epoch takes about a second)
data = load_dataset("digits", seed=0, limit_train=LIMIT_TRAIN)
print(f"digits: {len(data.x_train)} training, {len(data.x_test)} test images, 64 inputs")'''),
    ("md", """## Training with seed 002's 11 % stuck devices

The stuck fraction reaches the simulated chip through the bench file (`chip.sim_params`
of a temporary copy); the training code never learns which devices are stuck. Before
training, the job measures the gate → conductance line on spare rows (seed 002 Fig. 3d)."""),
    ("code", '''params = InsituParams(epochs=EPOCHS, seed=0)
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
assert res.test_accuracy > 0.6'''),
    ("code", '''import matplotlib.pyplot as plt

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
plt.show()'''),
    ("md", """## Seed 002 Fig. 4b in miniature: half the devices stuck

The same chip seed with 50 % stuck devices: in-situ training against an ex-situ transfer
(a network trained in software with torch, mapped min-max onto differential pairs,
programmed by write-verify with `program_array`, run by `VMM?`)."""),
    ("code", '''with bench_with_stuck_fraction("sim_onchip", 0.5) as path:
    with memprog.open_bench(path) as bench:
        ins = train_insitu(bench, params.model_copy(update={"epochs": 3}), data, stuck_fraction=0.5)
    with memprog.open_bench(path) as bench:
        ex = exsitu_transfer(bench, params, data, software_epochs=20)
print(f"50 % stuck: in-situ {ins.test_accuracy:.3f}")
print(
    f"            ex-situ {ex['chip_accuracy']:.3f} (software {ex['software_accuracy']:.3f}, "
    f"{ex['cells_converged']}/{ex['cells']} cells reached their targets)"
)
assert ins.test_accuracy > 0.6  # seed 002: over 60 % with half the devices stuck'''),
]

TOUR = [
    ("md", """# A tour of the simulated bench and its instrument stacks

memprog drives three instrument stacks — the on-chip 256×256 array controller, a Keithley
4200A-SCS with a 707B switch matrix, and a Keysight B1500A with a B1530A WGFMU — each in
its own command language. Every shipped `sim_*` bench answers those commands with a
simulated chip; the same code runs on the lab twin (`lab_*`). This notebook opens each
simulated bench, tunes a few cells with the same protocol call, and uses the on-chip
controller's analog vector-matrix multiply."""),
    ("code", '''import matplotlib.pyplot as plt
import numpy as np

import memprog
from memprog.protocols.alibart import tune_alibart'''),
    ("md", """## One protocol call, three stacks
`bench.programmer` is the stack's `CellProgrammer`; `tune_alibart` only sees pulses and
reads. Targets are picked inside each chip's working range."""),
    ("code", '''# bench: (rows, cols, targets µS); the B1500 probes reach one device
jobs = {
    "sim_onchip": ([0, 0], [0, 1], [200.0, 400.0]),
    "sim_k4200_707b": ([0, 0], [0, 1], [150.0, 300.0]),
    "sim_b1500_wgfmu": ([0], [0], [200.0]),
}
rows = []
for name, (rr, cc, tg) in jobs.items():
    with memprog.open_bench(name) as bench:
        info = bench.programmer.info
        res = tune_alibart(bench.programmer, rows=rr, cols=cc, targets_us=tg)
        rows.append((name, info.technology, f"{info.rows}x{info.cols}", res.final_us.round(1), int(res.pulses.sum()), bench.bench_time_s))
for r in rows:
    print(f"{r[0]:17s} {r[1]:13s} {r[2]:8s} final {r[3]} µS, {r[4]} pulses, bench time {r[5] * 1e3:.1f} ms")
assert all(len(r[3]) for r in rows)'''),
    ("md", """## Identical pulses on the on-chip stack
Soft-bounds switching: each identical SET pulse moves the conductance less as it nears its
bound; the gate voltage of the 1T1R cell caps it. A few cells of a real HfO2 array do not
respond at all (stuck, about 3 % on this chip): they stay where they were."""),
    ("code", '''with memprog.open_bench("sim_onchip") as bench:
    prog = bench.programmer
    cells = np.arange(8)
    trace = [prog.read(np.zeros(8, int), cells)]
    for k in range(60):
        prog.pulse(np.zeros(8, int), cells, 1.15, 200e-9)
        trace.append(prog.read(np.zeros(8, int), cells))
trace = np.array(trace)
plt.plot(trace)
plt.xlabel("SET pulse")
plt.ylabel("read conductance (µS)")
plt.title("hfo2_1t1r: identical pulses, eight cells")
plt.show()
moved = trace[-1] - trace[0]
responsive = moved > 100.0  # µS: a working cell climbs thousands of µS in 60 SET pulses
print(f"{responsive.sum()} of 8 cells respond; stuck cells moved {np.round(moved[~responsive], 1)} µS")
assert responsive.sum() >= 6 and (np.abs(moved[~responsive]) < 20).all()'''),
    ("md", """## Analog vector-matrix multiply (`VMM?`)
The on-chip controller drives row voltages and returns every column current at once:
`I_j = Σ_i G_ij V_i`. This is what runs a programmed network (see notebook 12)."""),
    ("code", '''with memprog.open_bench("sim_onchip") as bench:
    prog = bench.programmer
    g = prog.read_array()
    v = np.zeros(prog.info.rows)
    v[:4] = 0.2
    i_col = prog.controller.vmm(v)
expected = (g[:4] * 1e-6 * 0.2).sum(axis=0)
print("column currents (µA):", (i_col[:5] * 1e6).round(3), "  from read conductances:", (expected[:5] * 1e6).round(3))
assert np.allclose(i_col, expected, rtol=0.05, atol=2e-7)'''),
]

LADDER = [
    ("md", """# The 2,048-level ladder (Rao et al., Nature 2023)

One HfO2 1T1R cell programmed through 2,048 levels from 50 to 4,144 µS, 2 µS apart, each
verified by repeated reads at 0.2 V. Denoising (sub-threshold pulses that remove the
as-programmed random telegraph noise) is what makes every read land within 1 µS. The
control ladder without denoising runs over the first 128 levels only: settle re-tunes make
it slow (minutes for all 2,048), and 128 levels already show the contrast."""),
    ("code", '''import matplotlib.pyplot as plt
import numpy as np

import memprog
from memprog.protocols.ladder import ladder_levels, run_ladder

n_levels = 2048
n_control = 128  # the control ladder (no denoising): its first 128 levels
levels = ladder_levels(50.0, 2.0, n_levels)'''),
    ("code", '''results = {}
for protocol, lv in (("denoise", levels), ("denoise-off", levels[:n_control])):
    with memprog.open_bench("sim_onchip") as bench:
        results[protocol] = run_ladder(bench.programmer, 0, 0, lv, protocol=protocol, verify_reads=5, tolerance_us=1.0)
for protocol, res in results.items():
    s = res.summary()
    print(f"{protocol:12s}: {s['levels_within_tolerance']}/{s['levels_attempted']} levels with every read within ±1 µS, "
          f"max error {s['max_error_us']:.2f} µS, {s['pulses_per_level']:.1f} pulses per level")'''),
    ("code", '''fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
res = results["denoise"]
k = np.arange(levels.size)
a.plot(k, res.verify_mean_us, ".", ms=2, label="verification reads (mean)")
a.plot(k, levels, "k-", lw=0.5, label="target")
a.set_ylabel("conductance (µS)")
a.legend()
for protocol, r in results.items():
    b.plot(k[: r.verify_max_err_us.size], r.verify_max_err_us, ".", ms=2, label=protocol)
b.axhline(1.0, color="k", ls=":")
b.set_xlabel("level")
b.set_ylabel("max |error| (µS)")
b.set_yscale("log")
b.legend()
plt.show()
assert results["denoise"].summary()["levels_within_tolerance"] >= 0.95 * n_levels'''),
]

PIPELINE = [
    ("md", """# Characterise → hardware-aware training → program → run on the chip

The loop of DESIGN.md §1 on one simulated chip, every step stored in the run store
(`$MEMPROG_DB`, else the embedded SQLite file):

1. **characterise** the chip as seed 001 does (`memprog characterize`: stuck census,
   tuning imprecision by level, disturb, RTN), giving the variability database;
2. **train** the 64-54-10 digits network hardware-aware through that database
   (`memprog train --hardware-aware --db ...`);
3. **program** the trained weights onto the same chip (`memprog program`: differential
   pairs, two cells per conductance, the stuck cells the census found avoided);
4. **run** the test set on the chip by analog VMM and compare with software.

Settings are sized for a walk-through (a few minutes on a laptop): a characterisation of
a sample of devices, 60 training epochs. The full figures come from the benchmarks."""),
    ("code", '''import matplotlib.pyplot as plt
import numpy as np

import memprog
from memprog.store import VariabilityDB, default_db_url, open_store, stored_run

url = default_db_url()
BENCH = "sim_onchip"'''),
    ("md", "## 1. Characterise the chip"),
    ("code", '''from memprog.protocols.characterize import CharacterizeParams, characterize

params = CharacterizeParams(devices=8, levels=4, repeats=2, disturb_cells=16, census_cells=4096)
store = open_store(url)
with memprog.open_bench(BENCH) as bench:
    chip_id, tech = bench.config.chip.id, bench.programmer.info.technology
    with stored_run(store, kind="characterize", bench=BENCH, chip_id=chip_id, technology=tech,
                    protocol="characterize", params=params.model_dump()) as run:
        counts = characterize(bench.programmer, params, sink=run.sink)
store.close()
vdb = VariabilityDB(url, chip_id=chip_id)
print(counts)
print("stuck fractions:", vdb.stuck_fractions())
print(vdb.imprecision().round(3))'''),
    ("code", '''from memprog.hwaware.variability import VariabilityModel

var = VariabilityModel.from_db(vdb)
print(var.summary())'''),
    ("md", "## 2. Hardware-aware training through the chip's own variability"),
    ("code", '''from memprog.hwaware.mapping import save_weights
from memprog.hwaware.training import held_out_set, train

tr = train("digits", var, hardware_aware=True, epochs=60, seed=0)
path = save_weights(tr.weights, "digits_hwaware.pt")
x, y = held_out_set(tr.weights)
np.savez("digits_test.npz", x=x, y=y)
print(tr.summary()["test_accuracy_ideal"], tr.weights["mapping"], path)'''),
    ("md", """## 3–4. Program it and run the test set on the chip
`program_command` is what `memprog program digits_hwaware.pt --test-set digits_test.npz`
runs; it finds the census's stuck cells in the store and steers around them."""),
    ("code", '''from memprog.cli.program import human_summary, program_command

s, code = program_command("digits_hwaware.pt", BENCH, test_set="digits_test.npz", db=url, out="program_report")
print(human_summary(s))
assert s["chip_accuracy"] >= s["software_accuracy"] - 0.05'''),
    ("code", '''from IPython.display import Image, display

for png in s["report"]["png"]:
    display(Image(png))'''),
]


NOTEBOOKS = {
    "01_simulated_chip.ipynb": SIMCHIP,
    "02_one_script_three_stacks.ipynb": STACKS,
    "04_insitu_training.ipynb": INSITU,
    "10_tour_bench_and_stacks.ipynb": TOUR,
    "11_ladder_2048_levels.ipynb": LADDER,
    "12_characterise_train_program.ipynb": PIPELINE,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of ``cells`` (kind, source), outputs empty."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    return nb


def execute(nb: nbformat.NotebookNode, workdir: Path, timeout_s: int = 900) -> nbformat.NotebookNode:
    """Run ``nb`` in ``workdir`` on fresh simulated chips and a throw-away store.

    Why the environment: a simulated chip keeps its state between processes (it is
    non-volatile, like the device), so a walk-through that must start from a fresh chip
    gets its own chip-state folder, and its runs go to a store of its own.
    """
    from nbclient import NotebookClient

    env = {
        "MEMPROG_SIM_STATE_DIR": str(workdir / "sim_chips"),
        "MEMPROG_DB": f"sqlite:///{workdir / 'runs.sqlite'}",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def main(argv: list[str]) -> None:
    run = "--execute" in argv
    names = [a for a in argv if not a.startswith("--")] or list(NOTEBOOKS)
    for name in names:
        nb = build(NOTEBOOKS[name])
        if run:
            with tempfile.TemporaryDirectory() as tmp:
                execute(nb, Path(tmp))
        path = HERE / name
        nbformat.write(nb, path)
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
