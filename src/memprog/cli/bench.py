"""``memprog bench check FILE [--connect]``: is this bench file ready for the lab?

Why: a bench file is checked when it is opened, i.e. when a job starts and instruments are
about to be driven. A user editing a lab template wants the answer before that: every check
``load_bench_config`` makes (placeholders left in, limits against the technology's
breakdown, unknown keys, duplicate resources), VISA resource names that cannot parse, and
what the file will drive (chip, stack, each instrument's resource and library), without
touching an instrument. ``--connect`` then opens each instrument alone and asks it who it
is (``*IDN?``; the WGFMU library opens its session and lists its channels), and says what
answered, or which resource did not and why, without building the stack or sending
anything that changes an output.

Exit codes: 0 valid (and, with ``--connect``, every instrument answered); 2 the file is
invalid (one line on stderr naming the file and the field); 3 an instrument did not answer
(one line on stderr per instrument, each naming its resource).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pyvisa
import typer
from pyvisa import rname

from memprog.bench.assembly import ConnectionFailed, StackContext, check_stack_options
from memprog.cli.common import JsonOpt, emit, fail
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, MemprogError
from memprog.core.presets import PRESETS
from memprog.core.signals import EXIT_INSTRUMENT
from memprog.drivers.wgfmu import WGFMU, WgfmuSettings, load_wgfmu_library

bench_app = typer.Typer(help="Bench files: check one before a run.", no_args_is_help=True)

#: (read, write) terminations of the identity query per instrument kind (the drivers' own)
_TERMINATIONS = {"onchip": ("\n", "\n"), "k707b": ("\n", "\n"), "b1500": ("\r\n", "\r\n")}


def check_offline(path_or_name: str | Path) -> tuple[Any, Path, dict[str, Any]]:
    """Validate a bench file without connecting; (config, path, report document).

    Raises ConfigError (naming the file and the field) for anything a run would refuse.
    """
    config, path = load_bench_config(path_or_name)
    check_stack_options(config, path)
    _check_resource_names(config, path)
    chip = config.chip
    params = chip.device_params() if chip.sim_params else PRESETS[chip.technology]
    instruments = {
        name: {
            "kind": inst.kind,
            "resource": inst.resource,
            "visa_library": inst.visa_library,
            **({"library": inst.library} if inst.library is not None else {}),
            "simulated": inst.simulated,
        }
        for name, inst in config.instruments.items()
    }
    lim = chip.limits
    doc = {
        "file": str(path),
        "valid": True,
        "name": config.name,
        "chip": {
            "id": chip.id,
            "technology": chip.technology,
            "rows": chip.rows,
            "cols": chip.cols,
            **({"seed": chip.seed} if all(i["simulated"] for i in instruments.values()) else {}),
        },
        "stack": config.programmer.stack,
        "simulated": all(i["simulated"] for i in instruments.values()),
        "limits": {
            "set_v_max": lim.set_v_max,
            "reset_v_max": lim.reset_v_max,
            "unselected_v_max": lim.unselected_v_max,
            "breakdown_v": params.v_breakdown_v,
        },
        "instruments": instruments,
    }
    return config, path, doc


def _check_resource_names(config: Any, path: Path) -> None:
    """Every VISA resource must parse as one (a typo is the file's fault, not the link's)."""
    for name, inst in config.instruments.items():
        try:
            rname.parse_resource_name(inst.resource)
        except rname.InvalidResourceName as exc:
            raise ConfigError(
                f"{path.name}: instruments.{name}.resource",
                inst.resource,
                "a VISA resource name (e.g. TCPIP0::HOST::PORT::SOCKET, GPIB0::17::INSTR)",
                " ".join(str(exc).split()),
            ) from None


def connect_each(config: Any, path: Path) -> dict[str, dict[str, Any]]:
    """Open each instrument alone and ask who it is; name -> {ok, answer | error}.

    Nothing that changes an output is sent: the identity query only (the WGFMU library:
    open the session, list the channels, close it).
    """
    ctx = StackContext(config, path)
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, inst in config.instruments.items():
            try:
                answer = _wgfmu_identity(ctx, name, inst) if inst.kind == "wgfmu" else _idn(ctx, name, inst)
                results[name] = {"ok": True, "resource": inst.resource, "answer": answer}
            except (MemprogError, OSError) as exc:
                results[name] = {"ok": False, "resource": inst.resource, "error": _with_resource(exc, inst)}
    finally:
        ctx.close()
    return results


def _with_resource(exc: BaseException, inst: Any) -> str:
    text = " ".join(str(exc).split())
    names = [inst.resource] + ([inst.library] if inst.library else [])
    if not any(n in text for n in names):
        text = f"{inst.resource}: {text}"
    return text


def _idn(ctx: Any, name: str, inst: Any) -> str:
    """``*IDN?`` on a freshly opened resource with the driver's terminations."""
    if inst.kind == "k4200":  # KXCI over LAN: NUL-terminated; GPIB: newline (as the driver)
        term = "\0" if "SOCKET" in inst.resource.upper() else "\n"
        read_t = inst.options.get("read_termination", term)
        write_t = inst.options.get("write_termination", term)
    else:
        read_t, write_t = _TERMINATIONS.get(inst.kind, ("\n", "\n"))
        read_t = inst.options.get("read_termination", read_t)
        write_t = inst.options.get("write_termination", write_t)
    res = ctx.open_resource(name)  # ConnectionFailed / ConfigError name the resource
    res.read_termination = read_t
    res.write_termination = write_t
    try:
        reply = res.query("*IDN?")
    except pyvisa.errors.VisaIOError as exc:
        why = exc.description
        if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
            why = f"no reply to *IDN? within {inst.timeout_ms} ms (timeout)"
        raise ConnectionFailed(name, inst.resource, why) from exc
    except Exception as exc:  # noqa: BLE001 - a dropped socket, a bad reply encoding
        raise ConnectionFailed(name, inst.resource, f"*IDN?: {type(exc).__name__}: {exc}") from exc
    reply = reply.strip().strip("\0")
    if not reply:
        raise ConnectionFailed(name, inst.resource, "empty reply to *IDN?")
    return reply


def _wgfmu_identity(ctx: Any, name: str, inst: Any) -> str:
    """The WGFMU library's session on the mainframe's address, and its channels."""
    lib = ctx.library(name)
    where = inst.library or "@memprog"
    if lib is None:
        if not inst.library:
            raise ConfigError(f"instruments.{name}.library", None, "the path of wgfmu.dll (or '@memprog')")
        try:
            lib = load_wgfmu_library(inst.library)
        except ConfigError as exc:
            raise ConnectionFailed(name, inst.library, f"cannot load the WGFMU library: {exc.detail}") from exc
    w = WGFMU(lib, inst.resource, settings=WgfmuSettings(name=name))
    try:
        w.connect()
        channels = list(w.channel_ids)
    except MemprogError as exc:
        raise ConnectionFailed(name, inst.resource, f"WGFMU library {where}: {exc}") from exc
    finally:
        try:
            w.close()
        except MemprogError:
            pass
    return f"WGFMU library {where}: session on {inst.resource}, channels {channels}"


def _human(doc: dict[str, Any]) -> str:
    c, lim = doc["chip"], doc["limits"]
    where = "simulated bench" if doc["simulated"] else "lab bench"
    lines = [
        f"{doc['file']}: valid ({where} {doc['name']!r})",
        f"  chip {c['id']}: {c['technology']}, {c['rows']}x{c['cols']}"
        + (f", seed {c['seed']}" if "seed" in c else ""),
        f"  limits: SET <= {lim['set_v_max']:g} V, RESET <= {lim['reset_v_max']:g} V, "
        f"unselected <= {lim['unselected_v_max']:g} V (breakdown {lim['breakdown_v']:g} V)",
        f"  stack {doc['stack']}",
    ]
    for name, i in doc["instruments"].items():
        lib = f", library {i['library']}" if "library" in i else ""
        lines.append(f"  {name} ({i['kind']}): {i['resource']} via {i['visa_library']}{lib}")
    for name, r in doc.get("connect", {}).items():
        lines.append(f"  {name}: " + (f"answered {r['answer']}" if r["ok"] else f"NO ANSWER: {r['error']}"))
    return "\n".join(lines)


@bench_app.command("check")
def check_cmd(
    file: Annotated[str, typer.Argument(help="Bench file or shipped bench name.")],
    connect: Annotated[
        bool, typer.Option("--connect", help="Also open each instrument and ask *IDN?.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate a bench file without connecting; --connect asks each instrument who it is."""
    try:
        config, path, doc = check_offline(file)
    except MemprogError as exc:
        raise fail(exc) from exc
    if connect:
        doc["connect"] = connect_each(config, path)
    emit(doc, as_json, _human(doc))
    failed = {n: r for n, r in doc.get("connect", {}).items() if not r["ok"]}
    for name, r in failed.items():
        typer.echo(f"error: {name}: {r['error']}", err=True)
    if failed:
        raise typer.Exit(EXIT_INSTRUMENT)


def register(app: typer.Typer) -> None:
    """Add ``bench`` (``bench check``) to the ``memprog`` app."""
    app.add_typer(bench_app, name="bench")


__all__ = ["check_offline", "connect_each", "register"]
