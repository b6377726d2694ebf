"""``memprog sim chips`` and ``memprog sim reset``: the simulated chips kept on this machine.

Why: simulated chips are non-volatile (``sim_instruments/chip_state``): a run starts from
whatever the last run left on the chip, exactly as in the lab. These two commands make
that visible and reversible: ``chips`` lists every stored chip (what it is, how much it
has been used, who holds it now), ``reset`` gives fresh ones, refusing a chip another
process holds (exit 3, like a locked instrument).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.cli.common import JsonOpt
from memprog.core.jsonout import dumps
from memprog.sim_instruments.chip_state import (
    ChipInUseError,
    chip_file_prefix,
    list_chips,
    reset_chip_file,
    state_dir,
)


def _dumps(doc: Any) -> str:
    return dumps(doc)


def _printable(text: str) -> str:
    """A chip id from a state file as one line: control characters escaped, never sent raw
    to the terminal (an id is the bench file's text, which may hold anything)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def _when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _matches(row: dict[str, Any], chip: str) -> bool:
    """A chip named by its id, its file name or its file path (a corrupt file by the
    file-name prefix of the id its bench names, the name the refusal message gives)."""
    path = Path(row["file"])
    if chip in (row.get("chip_id"), path.name, str(path)):
        return True
    return row.get("chip_id") is None and path.name.startswith(chip_file_prefix(chip))


def _error(text: str, code: int) -> typer.Exit:
    typer.echo(f"error: {text}", err=True)
    return typer.Exit(code)


def register(sim_app: typer.Typer) -> None:
    """Add ``chips`` and ``reset`` to the ``memprog sim`` group."""

    @sim_app.command("chips")
    def chips_cmd(as_json: JsonOpt = False) -> None:
        """List the simulated chips stored on this machine and their state."""
        folder = state_dir()
        try:
            rows = list_chips(folder)
        except OSError as exc:
            raise _error(f"cannot read the simulated chips in {folder}: {exc}", 3) from exc
        if as_json:
            typer.echo(_dumps({"state_dir": str(folder), "chips": rows}))
            return
        typer.echo(f"simulated chips in {folder} ({len(rows)})")
        for r in rows:
            if r.get("chip_id") is None or "problem" in r:
                typer.echo(f"  {Path(r['file']).name}: {r.get('problem', 'unreadable')}")
                continue
            g = r["mean_conductance_us"]
            use = f"in use by pid {r['in_use_by_pid']}" if r["in_use_by_pid"] else "free"
            typer.echo(
                f"  {_printable(r['chip_id'])}  {r['technology']} {r['rows']}x{r['cols']} seed {r['seed']}  "
                f"{r['pulses']} pulses, {r['reads']} reads, mean G "
                f"{'n/a' if g is None else f'{g:.1f} µS'}  {_human_size(r['size_bytes'])}  "
                f"last used {_when(r['last_used_unix_s'])}  {use}\n    {r['file']}"
            )

    @sim_app.command("reset")
    def reset_cmd(
        chip: Annotated[
            str | None, typer.Argument(help="Chip id (or state file) to make fresh; see `memprog sim chips`.")
        ] = None,
        all_chips: Annotated[bool, typer.Option("--all", help="Make every stored chip fresh.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Give fresh simulated chips: delete their stored state (refused while in use)."""
        if (chip is not None) == all_chips:
            raise _error("reset needs a CHIP id or --all (not both); `memprog sim chips` lists them", 2)
        if chip is not None and not chip.strip():
            raise _error(f"CHIP={chip!r} is not allowed (allowed: a chip id from `memprog sim chips`)", 2)
        folder = state_dir()
        rows = list_chips(folder)
        chosen = rows if all_chips else [r for r in rows if _matches(r, chip or "")]
        if not chosen and not all_chips:
            raise _error(
                f"CHIP={chip!r} is not allowed (allowed: a simulated chip stored in {folder}): "
                "`memprog sim chips` lists them", 2,
            )
        done: list[dict[str, Any]] = []
        busy: list[dict[str, Any]] = []
        for r in chosen:
            try:
                reset_chip_file(Path(r["file"]))
            except FileNotFoundError:
                continue  # reset meanwhile: it is fresh either way
            except ChipInUseError as exc:
                busy.append({"chip_id": r.get("chip_id"), "file": r["file"], "pid": exc.pid or None, "message": str(exc)})
                continue
            except OSError as exc:
                raise _error(f"cannot reset {r['file']}: {exc}", 3) from exc
            done.append({"chip_id": r.get("chip_id"), "file": r["file"]})
        if as_json:
            typer.echo(_dumps({"state_dir": str(folder), "reset": done, "in_use": busy}))
        else:
            for d in done:
                typer.echo(f"reset {_printable(d['chip_id'] or Path(d['file']).name)}: fresh at its next open")
            if not done and not busy:
                typer.echo(f"no simulated chips in {folder}")
        if busy:
            for b in busy:
                typer.echo(f"error: {b['message']}", err=True)
            raise typer.Exit(3)


__all__ = ["register"]
