"""Write the Jupyter notebooks of this folder from the cell sources below.

The ``.ipynb`` files are what a user opens (``pip install -e ".[notebooks]" && jupyter lab
notebooks/``); this script keeps their sources reviewable as plain text. Run it after
editing: ``python notebooks/_make_ipynb.py``. Outputs are not stored (the test suite
executes every notebook, on small settings: ``MEMPROG_NOTEBOOK_SMALL=1``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SMALL = '''import os

SMALL = os.environ.get("MEMPROG_NOTEBOOK_SMALL") == "1"  # the test suite runs small settings'''

TOUR = [
    ("md", """# A tour of the simulated bench and its instrument stacks

memprog drives three instrument stacks — the on-chip 256×256 array controller, a Keithley
4200A-SCS with a 707B switch matrix, and a Keysight B1500A with a B1530A WGFMU — each in
its own command language. Every shipped `sim_*` bench answers those commands with a
simulated chip; the same code runs on the lab twin (`lab_*`). This notebook opens each
simulated bench, tunes a few cells with the same protocol call, and uses the on-chip
controller's analog vector-matrix multiply."""),
    ("code", SMALL + '''
import matplotlib.pyplot as plt
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
bound; the gate voltage of the 1T1R cell caps it."""),
    ("code", '''with memprog.open_bench("sim_onchip") as bench:
    prog = bench.programmer
    cells = np.arange(8)
    trace = [prog.read(np.zeros(8, int), cells)]
    for k in range(20 if SMALL else 60):
        prog.pulse(np.zeros(8, int), cells, 1.15, 200e-9)
        trace.append(prog.read(np.zeros(8, int), cells))
trace = np.array(trace)
plt.plot(trace)
plt.xlabel("SET pulse")
plt.ylabel("read conductance (µS)")
plt.title("hfo2_1t1r: identical pulses, eight cells")
plt.show()
assert (trace[-1] >= trace[0] - 5).all()'''),
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
as-programmed random telegraph noise) is what makes every read land within 1 µS. With
`MEMPROG_NOTEBOOK_SMALL=1` (the test suite) the ladder is cut to its first 64 levels."""),
    ("code", SMALL + '''
import matplotlib.pyplot as plt
import numpy as np

import memprog
from memprog.protocols.ladder import ladder_levels, run_ladder

n_levels = 64 if SMALL else 2048
levels = ladder_levels(50.0, 2.0, n_levels)'''),
    ("code", '''results = {}
for protocol in ("denoise", "denoise-off"):
    with memprog.open_bench("sim_onchip") as bench:
        results[protocol] = run_ladder(bench.programmer, 0, 0, levels, protocol=protocol, verify_reads=5, tolerance_us=1.0)
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
    b.plot(k, r.verify_max_err_us, ".", ms=2, label=protocol)
b.axhline(1.0, color="k", ls=":")
b.set_xlabel("level")
b.set_ylabel("max |error| (µS)")
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

`MEMPROG_NOTEBOOK_SMALL=1` (the test suite) characterises and trains on small settings."""),
    ("code", SMALL + '''
import matplotlib.pyplot as plt
import numpy as np

import memprog
from memprog.store import VariabilityDB, default_db_url, open_store, stored_run

url = default_db_url()
BENCH = "sim_onchip"'''),
    ("md", "## 1. Characterise the chip"),
    ("code", '''from memprog.protocols.characterize import CharacterizeParams, characterize

params = CharacterizeParams(devices=3, levels=3, repeats=1, disturb_cells=8, census_cells=1024) if SMALL else CharacterizeParams()
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

tr = train("digits", var, hardware_aware=True, epochs=2 if SMALL else 300, seed=0)
path = save_weights(tr.weights, "digits_hwaware.pt")
x, y = held_out_set(tr.weights)
if SMALL:
    x, y = x[:80], y[:80]
np.savez("digits_test.npz", x=x, y=y)
print(tr.summary()["test_accuracy_ideal"], tr.weights["mapping"], path)'''),
    ("md", """## 3–4. Program it and run the test set on the chip
`program_command` is what `memprog program digits_hwaware.pt --test-set digits_test.npz`
runs; it finds the census's stuck cells in the store and steers around them."""),
    ("code", '''from memprog.cli_program import human_summary, program_command

s, code = program_command("digits_hwaware.pt", BENCH, test_set="digits_test.npz", db=url, out="program_report")
print(human_summary(s))
assert s["chip_accuracy"] >= s["software_accuracy"] - 0.05'''),
    ("code", '''from IPython.display import Image, display

for png in s["report"]["png"]:
    display(Image(png))'''),
]


def write(name: str, cells: list[tuple[str, str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    path = HERE / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    for name, cells in (
        ("10_tour_bench_and_stacks.ipynb", TOUR),
        ("11_ladder_2048_levels.ipynb", LADDER),
        ("12_characterise_train_program.ipynb", PIPELINE),
    ):
        print(write(name, cells))
