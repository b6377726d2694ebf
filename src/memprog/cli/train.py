"""``memprog train`` and ``memprog evaluate``: hardware-aware training and Monte Carlo
transfer evaluation (issue 11), thin over :mod:`memprog.hwaware`.

The non-idealities come from the variability database (``--db URL``, filled by ``memprog
characterize``) or, without one, from a technology preset's published figures
(``--preset``). Evaluating two weight files with the same ``--seed`` simulates the same
transfers (the same random draws) for both, so their tables compare like for like.
``evaluate --on-bench`` also programs fresh simulated chips and sets their accuracies beside
the prediction (:func:`memprog.jobs.evaluate.compare_with_prediction`).

``train`` runs on the shared run lifecycle (:func:`memprog.cli.runs.run_command`): with
``--db`` it is stored as a ``train`` run, without it it is not stored; either way a signal
gives one line and exit 130/143/129.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.cli import options as O
from memprog.cli.common import JsonOpt, ProgressOpt, emit, fail, show_progress
from memprog.cli.fleet_run import EngineOpt, RayAddressOpt
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.cli.runs import Outcome, run_command
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, MemprogError
from memprog.core.presets import PRESETS
from memprog.hwaware.mapping import load_weights, save_weights, weights_temp_path
from memprog.hwaware.order import bench_array_shape
from memprog.reporting.outcome import exit_code_for_error

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Variability database URL (filled by `memprog characterize`)."),
]
PresetOpt = Annotated[
    str, typer.Option("--preset", callback=O.choice_of(lambda: sorted(PRESETS)), help="Technology preset whose published figures stand in when there is no --db.")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="torch device (cpu, cuda, cuda:1, ...).")]
ImprecisionOpt = Annotated[
    str,
    typer.Option("--imprecision", callback=O.choice("raw", "fitted"),
                 help="With --db: sample the recorded reads per level (raw, default) or the fitted line and offset."),
]
StuckOpt = Annotated[
    str | None,
    typer.Option("--stuck", callback=O.float_list(0.0, 0.5, 2),
                 help="HRS,LRS stuck fractions as a stated hyperparameter (seed 001: 0.005,0.005); default: as measured."),
]


def _stuck_pair(stuck: str | None) -> tuple[float, float] | None:
    if stuck is None:
        return None
    parts = [float(p) for p in stuck.split(",") if p.strip()]
    if len(parts) != 2:
        raise ConfigError("--stuck", stuck, "two fractions HRS,LRS (e.g. 0.005,0.005)")
    if parts[0] + parts[1] >= 1:
        raise ConfigError("--stuck", stuck, "fractions adding up to < 1")
    return parts[0], parts[1]


def load_variability(
    db: str | None, preset: str, chip_id: str | None = None, *, imprecision: str = "raw",
    stuck: tuple[float, float] | None = None,
) -> Any:
    """The :class:`VariabilityModel` of ``--db`` (our characterisation runs: raw imprecision
    reads by default) or of ``--preset``; ``stuck`` replaces the stuck fractions."""
    # deferred: torch
    from memprog.hwaware.variability import VariabilityModel

    if db is None:
        var = VariabilityModel.from_preset(preset)
    else:
        # deferred: sqlalchemy and pandas
        from memprog.store import VariabilityDB

        vdb = VariabilityDB(db, chip_id=chip_id)
        try:
            var = VariabilityModel.from_db(vdb, imprecision=imprecision)
        finally:
            vdb.close()
    return var if stuck is None else var.with_stuck(*stuck, preset=preset)


# what `memprog program` reads as a torch weight file (memprog.jobs.weights): --out must be one
WEIGHT_FILE_SUFFIXES = (".pt", ".pth")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (or set it in the environment), not its default."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")


def _check_unused_options(
    ctx: typer.Context, *, db: str | None, hardware_aware: bool, validate_every: int,
    patience: int | None, chip_id: str | None, stuck: str | None,
) -> None:
    """Refuse options that this training would ignore while recording them.

    Why: the weight file and the stored run record the variability as asked (``+stuck(...)``,
    ``imprecision: fitted``, a chip), so an option the training never used would later read
    as one it did. What uses what: transfers are sampled by hardware-aware training and by
    the validation of ``--validate-every`` (regular training otherwise samples none);
    ``--imprecision`` and ``--chip-id`` select from the ``--db`` tables (a preset has no
    recorded reads, no chips); ``--patience`` counts validations.
    """
    samples = "only with --hardware-aware or --validate-every N (regular training samples no transfers otherwise)"
    if stuck is not None and not hardware_aware and validate_every == 0:
        raise ConfigError("--stuck", stuck, samples)
    if _given(ctx, "imprecision"):
        imprecision = ctx.params.get("imprecision")
        if db is None:
            raise ConfigError("--imprecision", imprecision, "only with --db (a preset has no recorded reads)")
        if not hardware_aware and validate_every == 0:
            raise ConfigError("--imprecision", imprecision, samples)
    if patience is not None and validate_every == 0:
        raise ConfigError("--patience", patience, "only with --validate-every N (it counts validations)")
    if chip_id is not None and db is None:
        raise ConfigError("--chip-id", chip_id, "only with --db (the store holding that chip's characterisation)")


def _check_out(out: Path) -> None:
    """``--out``: a .pt/.pth file this process can create, checked before any training.

    Why a real create rather than :func:`os.access` (which ``O.out_file`` asks): as root,
    ``os.access`` says yes to folders no file can be made in (``/proc``), and the training
    would be lost when the write failed. The probe creates the temporary file the save
    writes first (:func:`~memprog.hwaware.mapping.weights_temp_path`, beside ``out``) and
    removes it; ``out`` itself is never touched (the save renames over it).
    """
    if out.suffix.lower() not in WEIGHT_FILE_SUFFIXES:
        raise ConfigError(
            "--out", str(out), "a .pt or .pth file (the torch weight file memprog program and evaluate read)"
        )
    probe = weights_temp_path(out)
    try:
        with probe.open("wb"):
            pass
    except OSError as exc:
        raise ConfigError("--out", str(out), "a file memprog can write", exc.strerror or str(exc)) from exc
    try:
        probe.unlink()
    except OSError:
        pass  # (a scanner holding it a moment on Windows: the save writes this same name again)


def _technology(ctx: typer.Context, preset: str, bench: str | None, bench_tech: str | None) -> tuple[str | None, str]:
    """The technology this training is for and what says so (None: nothing does).

    The ``--bench``'s chip says it when given, else a ``--preset`` the user typed (the
    default preset is no statement: with ``--db`` the store's technology stands).
    """
    preset_given = _given(ctx, "preset")
    if bench_tech is not None:
        if preset_given and preset != bench_tech:
            raise ConfigError("--preset", preset, f"{bench_tech}, the technology of --bench {bench}'s chip")
        return bench_tech, f"--bench {bench}'s chip"
    return (preset, "--preset") if preset_given else (None, "")


def _characterised_chips(
    db: str, chip_id: str | None, tech: str | None, tech_from: str
) -> tuple[list[str], str | None]:
    """The chips whose characterisation runs ``--db`` (and ``--chip-id``) give this training,
    and their technology; refuses a pool of several technologies and one unlike ``tech``.

    Why: :class:`VariabilityDB` pools every characterize run it selects, so without a chip
    the stuck census of an HfO2 chip would land in a TiO2 model. Chips of one technology
    pool as before and are named (``variability_chips``). A run whose technology was not
    recorded counts as a technology of its own in a pool (it cannot be told apart); alone,
    it passes unchecked. An empty selection returns ``([], None)``: the model's loader then
    names the ``memprog characterize`` run that fills it.
    """
    # deferred: sqlalchemy and pandas
    from memprog.store import VariabilityDB, mask_url

    vdb = VariabilityDB(db, chip_id=chip_id)
    try:
        runs = vdb.runs()
    finally:
        vdb.close()
    rows = runs[["chip_id", "technology"]].astype(object)
    rows = rows.where(rows.notna(), None)
    found = {(None if c is None else str(c), None if t is None else str(t)) for c, t in rows.itertuples(index=False)}
    pairs = sorted(found, key=lambda p: (p[0] or "", p[1] or ""))
    techs = {t for _, t in pairs}
    nameless = int(rows["chip_id"].isna().sum())  # (runs stored by a library call without a chip)
    listing = ", ".join(f"{c or f'{nameless} run(s) with no chip id'} ({t or 'technology not recorded'})" for c, t in pairs)
    if len(techs) > 1:  # (with --chip-id too: one id recorded under two technologies is two chips)
        raise ConfigError(
            *(("--chip-id", chip_id) if chip_id is not None else ("--db", mask_url(db))),
            "characterisations of one technology" + ("" if chip_id else ", or --chip-id CHIP to train from one chip"),
            f"it holds {listing}",
        )  # fmt: skip
    known = sorted(t for t in techs if t is not None)
    if tech is not None and known and known != [tech]:
        where = ("--chip-id", chip_id) if chip_id is not None else ("--db", mask_url(db))
        raise ConfigError(
            *where, f"characterisations of {tech}, the technology of {tech_from}", f"they are of {listing}"
        )
    return list(dict.fromkeys(c for c, _ in pairs if c is not None)), (known[0] if len(known) == 1 else None)


def _evaluation_variability(
    ctx: typer.Context, db: str | None, preset: str, chip_id: str | None, imprecision: str, stuck: str | None,
    on_bench: str | None = None,
) -> tuple[Any, list[str] | None]:
    """``evaluate``'s transfer model and the chips it pools, checked as ``train`` checks its own.

    Why the same checks: a prediction drawn from a store that pools an HfO2 census into a TiO2
    model, or recorded as ``imprecision: fitted`` / a chip when no store was read, would be
    set beside a chip it does not describe.
    """
    if chip_id is not None and db is None:
        raise ConfigError("--chip-id", chip_id, "only with --db (the store holding that chip's characterisation)")
    if db is None and _given(ctx, "imprecision"):
        raise ConfigError("--imprecision", imprecision, "only with --db (a preset has no recorded reads)")
    chips: list[str] | None = None
    if db is not None:
        tech, tech_from = (preset, "--preset") if _given(ctx, "preset") else (None, "")
        if on_bench is not None:  # the chips it programs are of the bench's technology
            tech, tech_from = load_bench_config(on_bench)[0].chip.technology, f"--on-bench {on_bench}'s chip"
        chips, db_tech = _characterised_chips(db, chip_id, tech, tech_from)
        if not _given(ctx, "preset") and db_tech in PRESETS:
            preset = db_tech  # stuck conductances the census lacks: the chips' own preset
    var = load_variability(db, preset, chip_id, imprecision=imprecision, stuck=_stuck_pair(stuck))
    return var, chips


def _check_device(device: str) -> Any:
    import torch  # deferred: torch (~1 s); memprog --help stays fast

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError("--device", device, "a torch device such as cpu or cuda:0") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device", device, "cpu (no CUDA device is available here)")
    return dev


def _table_text(summary: dict) -> str:
    lines = ["  transfers correct   points   % of test set"]
    for r in summary["table"]:
        lines.append(f"  {r['bin']:>17}   {r['points']:6d}   {r['percent']:6.1f} %")
    return "\n".join(lines)


def evaluate_on_bench(
    weights: Path,
    bench: str,
    transfers: int,
    variability: Any,
    test_set: tuple[Any, Any],
    *,
    mc_transfers: int = 1000,
    seed: int = 0,
    png: Path | None = None,
    as_json: bool = False,
    progress: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    db: str | None = None,
) -> None:
    """``memprog evaluate W.pt --on-bench B --transfers K``: K programmed chips vs the MC prediction.

    Called by ``memprog evaluate`` once it has the variability model and the held-out set;
    prints the summary (one JSON document with ``--json``).
    """
    # deferred: memprog.jobs pulls in sqlalchemy and pandas, and torch
    from memprog.jobs.evaluate import compare_with_prediction

    program_chips = None
    if engine != "local" or ray_address is not None:  # the transfers are the fleet's chips
        # deferred: the fleet room (and Ray, when asked for) load only for a fleet
        from memprog.fleet.engines import make_engine

        # deferred: as above
        from memprog.fleet.job import fleet_chip_programmer

        make_engine(engine, ray_address)  # bad engine options: refused before any MC work
        # deferred: the store loads sqlalchemy
        from memprog.store.engine import default_db_url

        # the yield study is recorded as a fleet run (the dashboard shows it beside the prediction)
        program_chips = fleet_chip_programmer(lambda: make_engine(engine, ray_address), db or default_db_url())
    out = compare_with_prediction(
        weights, bench, transfers, variability, test_set,
        mc_transfers=mc_transfers, first_seed=seed + 1, png=png, progress=progress, program_chips=program_chips,
    )  # fmt: skip
    out["engine"] = engine
    pr = out["predicted"]
    meas = ", ".join(f"{100 * a:.1f}" for a in out["measured_accuracies"])
    human = (
        f"{weights} on {transfers} fresh simulated chips of {bench} (one pair per weight):\n"
        f"  measured chip accuracy (%): {meas}; mean {100 * out['measured_mean']:.1f}\n"
        f"  predicted ({pr['source']}, {pr['mc_transfers']} MC transfers): mean {100 * pr['mean']:.1f} %, "
        f"5-95 % band {100 * pr['p5']:.1f}-{100 * pr['p95']:.1f} %; software {100 * out['software_accuracy']:.1f} %\n"
        f"  measured mean inside the predicted band: {'yes' if out['measured_mean_in_predicted_5_95'] else 'no'}"
        + (f"; plot: {png}" if png is not None else "")
    )
    emit(out, as_json, human)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``evaluate`` to the ``memprog`` app."""

    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        dataset: Annotated[str, typer.Option("--dataset", callback=O.choice("halfmoons", "digits"), help="halfmoons or digits.")],
        out: Annotated[Path, typer.Option("--out", callback=O.out_file(), help="Weight file to write (.pt or .pth: the weights with their sizes, dataset and training variability, as memprog evaluate and memprog program read them).")],
        db: DbOpt = None,
        preset: PresetOpt = "tio2_passive",
        hardware_aware: Annotated[
            bool, typer.Option("--hardware-aware/--regular", help="Train through sampled transfers (default: regular).")
        ] = False,
        epochs: Annotated[int | None, typer.Option("--epochs", callback=O.int_in(1, O.MAX_EPOCHS), help="Epochs (default per dataset).")] = None,
        seed: Annotated[int, typer.Option("--seed", callback=O.SEED, help="Seed of weights, batch order and sampled transfers.")] = 0,
        lr: Annotated[float | None, typer.Option("--lr", callback=O.LEARNING_RATE, help="Adam learning rate (default: the recipe's: 0.01, paper 0.1).")] = None,
        recipe: Annotated[str, typer.Option("--recipe", callback=O.choice("default", "paper"), help="default (Adam lr 0.01, torch init) or paper (the authors' code: lr 0.1, weight decay 1e-4, Xavier init, 3,000 epochs); --lr/--weight-decay/--init/--epochs override it.")] = "default",
        weight_decay: Annotated[float | None, typer.Option("--weight-decay", callback=O.float_in(0.0, 1.0), help="Adam weight decay (default: the recipe's: 0, paper 1e-4).")] = None,
        init: Annotated[str | None, typer.Option("--init", callback=O.choice("torch", "xavier"), help="Initial weights: torch (nn.Linear's) or xavier (paper).")] = None,
        imprecision: ImprecisionOpt = "raw",
        stuck: StuckOpt = None,
        bench: Annotated[str | None, typer.Option("--bench", help="Bench the network will be programmed on: each device's disturb is keyed by the cells the program job writes after it there.")] = None,
        order: Annotated[str, typer.Option("--order", callback=O.choice("row-major", "column-major", "snake"), help="The program job's --order on that bench.")] = "row-major",
        validate_every: Annotated[int, typer.Option("--validate-every", callback=O.int_in(0, 100_000), help="Every N epochs keep the weights with the best transfer-robust validation score (0: off).")] = 0,
        bias_scale: Annotated[str, typer.Option("--bias-scale", callback=O.choice("own", "folded"), help="Map each layer's biases on their own min-max scale (own, default; the chip drives the bias row at max|b|/max|W|) or on the weights' (folded, the mapping of files without the key).")] = "own",
        patience: Annotated[int | None, typer.Option("--patience", callback=O.int_in(1, 100_000), help="Stop after N validations without improvement (needs --validate-every; default: never stop early).")] = None,
        chip_id: Annotated[str | None, typer.Option("--chip-id", help="Only this chip's characterisation runs (needs --db; required when the store holds chips of several technologies).")] = None,
        device: DeviceOpt = "cpu",
        threads: Annotated[
            int, typer.Option("--threads", callback=O.int_in(1, O.MAX_THREADS), help="CPU threads for torch (small networks: 1 is fastest).")
        ] = 1,
        force: ForceOpt = False,
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Train a network on half-moons or digits, regular or hardware-aware; write its weights."""
        import torch  # deferred: torch (~1 s); memprog --help stays fast

        # deferred: torch
        from memprog.hwaware.training import PAPER_RECIPE, train

        # the ops of these networks are far below torch's parallel grain size; a second
        # thread only spins (and, on a busy machine, steals time from the first)
        torch.set_num_threads(threads)
        try:
            if dataset not in ("halfmoons", "digits"):
                raise ConfigError("--dataset", dataset, "halfmoons or digits")
            stuck_pair = _stuck_pair(stuck)
            _check_unused_options(ctx, db=db, hardware_aware=hardware_aware, validate_every=validate_every,
                                  patience=patience, chip_id=chip_id, stuck=stuck)  # fmt: skip
            refuse_existing(out, force, "--out")  # a trained file is never replaced unasked
            _check_out(out)  # a weight file that cannot be written fails now, not after the training
            dev = _check_device(device)
            cfg = None if bench is None else load_bench_config(bench)[0]
            shape = None if bench is None else bench_array_shape(bench)
            tech, tech_from = _technology(ctx, preset, bench, None if cfg is None else cfg.chip.technology)
            chips: list[str] | None = None
            if db is None:
                if tech is not None and tech != preset:  # the variability is the preset's
                    raise ConfigError(
                        "--bench", bench, f"a bench of {preset}, whose figures train uses without --db",
                        f"its chip is {tech}; pass --preset {tech} for that technology's figures, or "
                        "characterise the chip (memprog characterize) and train with --db",
                    )
            else:
                chips, db_tech = _characterised_chips(db, chip_id, tech, tech_from)
                # stuck conductances the census lacks come from the preset of the chips' technology
                if not _given(ctx, "preset") and (tech or db_tech) in PRESETS:
                    preset = tech or db_tech
            var = load_variability(db, preset, chip_id, imprecision=imprecision, stuck=stuck_pair)
            base = dict(PAPER_RECIPE) if recipe == "paper" else {"lr": 0.01, "weight_decay": 0.0, "init": "torch", "epochs": None}
            given = {"lr": lr, "weight_decay": weight_decay, "init": init, "epochs": epochs}
            rec = base | {k: v for k, v in given.items() if v is not None}
        except MemprogError as exc:  # bad input 2, a store that fails 3
            code = exit_code_for_error(exc)
            err = fail(exc)
            raise (err if code == 2 else typer.Exit(code)) from exc

        def body(run: Any) -> Outcome:
            res = train(
                dataset, var, hardware_aware=hardware_aware, epochs=rec["epochs"], seed=seed, lr=rec["lr"],
                weight_decay=rec["weight_decay"], init=rec["init"], array_shape=shape, order=order,
                validate_every=validate_every, patience=patience, bias_scale=bias_scale,
                device=dev, progress=show_progress(progress),
            )  # fmt: skip
            if chips is not None:  # the chips the --db variability pools, beside its source
                res.weights["variability_chips"] = chips
            save_weights(res.weights, out)  # a failed write: one line, exit 3 (run_command)
            summary = res.summary() | {"out": str(out), "device": str(dev), "lr": rec["lr"], "run_id": run.run_id,
                                       "variability_chips": chips}  # fmt: skip
            kind = "hardware-aware" if hardware_aware else "regular"
            human = (
                f"{kind} {dataset} network {res.weights['sizes']} trained {res.weights['epochs']} epochs "
                f"in {res.wall_s:.1f} s (seed {seed}, variability {var.source}"
                + (f" from chips {', '.join(chips)}" if chips else "") + ")\n"
                f"final loss {summary['final_loss']:.4f}, ideal test accuracy {res.test_accuracy * 100:.1f} %\n"
                f"weights: {out}"
            )
            return Outcome(summary, human)

        # training from the database is recorded there as a `train` run; from a preset it is not
        run_command(
            body, db=db, kind="train", bench=None, chip_id=chip_id, as_json=as_json, stored=db is not None,
            params={"dataset": dataset, "hardware_aware": hardware_aware, "epochs": rec["epochs"],
                    "seed": seed, "lr": rec["lr"], "recipe": recipe, "bench": bench, "order": order,
                    "bias_scale": bias_scale,
                    "out": str(out), "variability": var.summary(), "variability_chips": chips},
        )  # fmt: skip

    @app.command("evaluate")
    def evaluate_cmd(
        ctx: typer.Context,
        weights: Annotated[Path, typer.Argument(help="Weight file written by `memprog train`.")],
        transfers: Annotated[int, typer.Option("--transfers", callback=O.int_in(1, O.MAX_TRANSFERS), help="Simulated transfers.")] = 1000,
        db: DbOpt = None,
        preset: PresetOpt = "tio2_passive",
        seed: Annotated[int, typer.Option("--seed", callback=O.SEED, help="Seed of the simulated transfers (same seed, same transfers).")] = 0,
        chip_id: Annotated[str | None, typer.Option("--chip-id", help="Only this chip's characterisation runs.")] = None,
        png: Annotated[Path | None, typer.Option("--png", callback=O.out_file(), help="Draw the table (and the half-moons boundary) into this PNG (an existing file is refused without --force).")] = None,
        force: ForceOpt = False,
        device: DeviceOpt = "cpu",
        as_json: JsonOpt = False,
        on_bench: Annotated[str | None, typer.Option("--on-bench", help="Also program --transfers fresh simulated chips of this bench and set their accuracies beside the prediction.")] = None,
        imprecision: ImprecisionOpt = "raw",
        stuck: StuckOpt = None,
        bench: Annotated[str | None, typer.Option("--bench", help="Key the disturb as the program job writes this bench's array (default: the layout the weights were trained for).")] = None,
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
    ) -> None:
        """Monte Carlo transfer evaluation: per test point, the fraction of transfers that get it right.

        With --on-bench B the --transfers chips are programmed too: one after another
        (--engine local), or one Ray actor per chip in parallel (--engine ray)."""
        try:
            refuse_existing(png, force, "--png")  # an earlier figure stays unless --force (issue 27)
        except MemprogError as exc:
            raise fail(exc) from exc
        # deferred: torch
        from memprog.hwaware.training import held_out_set

        if on_bench is None and (engine != "local" or ray_address is not None):
            raise fail(ConfigError("--engine", engine, "only with --on-bench (the chips it programs)"))
        if on_bench is not None:  # memprog program's comparison, on fresh simulated chips
            try:
                var, _ = _evaluation_variability(ctx, db, preset, chip_id, imprecision, stuck, on_bench)
                x, y = held_out_set(load_weights(weights))
                return evaluate_on_bench(
                    weights, on_bench, transfers, var, (x, y), seed=seed, png=png, as_json=as_json,
                    progress=show_progress(False if as_json else None), engine=engine, ray_address=ray_address, db=db,
                )
            except MemprogError as exc:  # bad input 2, instrument or store 3 (as `memprog program`)
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(exit_code_for_error(exc)) from exc
        # deferred: torch
        from memprog.hwaware.transfer import simulator_from_weights

        try:
            dev = _check_device(device)
            w = load_weights(weights)
            var, chips = _evaluation_variability(ctx, db, preset, chip_id, imprecision, stuck)
            x, y = held_out_set(w)
            shape = None if bench is None else bench_array_shape(bench)
            sim = simulator_from_weights(w, var, dev, array_shape=shape)
            t0 = time.perf_counter()
            res = sim.evaluate(x, y, transfers, seed=seed)
            wall = time.perf_counter() - t0
            if png is not None:
                # deferred: torch and matplotlib
                from memprog.hwaware.plots import plot_evaluation

                kind = "hardware-aware" if w["hardware_aware"] else "regular"
                plot_evaluation(
                    res, png, title=f"{kind} {w['dataset']} network {w['sizes']} ({var.source})",
                    sim=sim if w["dataset"] == "halfmoons" else None, x_test=x, y_test=y, seed=seed,
                )
        except MemprogError as exc:  # bad input 2, a store that fails 3
            code = exit_code_for_error(exc)
            err = fail(exc)
            raise (err if code == 2 else typer.Exit(code)) from exc
        s = res.summary()
        summary = s | {
            "variability_chips": chips,
            "weights": str(weights),
            "dataset": w["dataset"],
            "hardware_aware": w["hardware_aware"],
            "epochs": w["epochs"],
            "variability_source": var.source,
            "trained_with": w["variability_source"],
            "seed": seed,
            "device": str(dev),
            "wall_s": wall,
            "png": str(png) if png is not None else None,
        }
        human = (
            f"{weights}: {transfers} simulated transfers ({var.source}"
            + (f" from chips {', '.join(chips)}" if chips else "") + f"), {s['n_test_points']} test points\n"
            f"ideal accuracy {s['ideal_accuracy'] * 100:.1f} %, mean over transfers "
            f"{s['test_accuracy_mean'] * 100:.1f} % (std {s['test_accuracy_std'] * 100:.1f} %)\n"
            f"correct in >= 95 % of transfers: {s['fraction_correct_in_at_least_95pct'] * 100:.1f} % of points\n"
            + _table_text(s)
            + (f"\nplot: {png}" if png is not None else "")
        )
        emit(summary, as_json, human)
