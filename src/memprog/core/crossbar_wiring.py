"""Wiring of a passive crossbar behind a switch matrix (the ``wiring:`` section of a bench file).

The k4200_707b stack (seed 001, Drolet et al.) routes the terminals of a Keithley 4200A-SCS
to the lines of a wire-bonded passive crossbar through a Keithley 707B switch matrix:

* every **matrix row** (A-H, bussed across the 707B's slots by its backplane) carries one
  **instrument terminal** (``PMU1-1``, ``SMU2``, ``GNDU`` ...);
* every chip pad (word line, bit line) hangs on one **matrix column** (slot, column 1-12);
* closing crosspoint ``<slot><row><column>`` (e.g. ``"1A01"``) connects that terminal to
  that line.

The same model is read by the driver stack (to route cells and build the interlock) and by
the simulator (to decide what the simulated 4200 sees through what the simulated 707B has
closed), so a bench file describes the wiring once. It lives in the core because both layers
need it and neither may import the other.

Example (YAML)::

    wiring:
      analyzer: k4200            # instrument names in the bench file
      matrix: k707b
      rows: {A: PMU1-1, B: PMU1-2, C: PMU2-1, D: GNDU, E: SMU1, F: SMU2, G: SMU3}
      word_lines: {slot: 1, columns: [1, 2, 3, 4, 5, 6, 7, 8]}
      bit_lines: {slot: 2, columns: [1, 2, 3, 4, 5, 6, 7, 8]}
      roles:
        pulse_row: PMU1-1        # selected word line during a write pulse (V)
        bias_rows: PMU1-2        # unselected word lines (V/3, or V/2)
        bias_cols: PMU2-1        # unselected bit lines (2V/3, or V/2)
        pulse_col: GNDU          # selected bit line (0 V)
        read_force: SMU1         # selected word line during a read (read voltage)
        read_sense: SMU2         # selected bit line during a read (0 V, current measured)
        read_ground: SMU3        # unselected lines during a read (0 V); omit to let them float
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel

ROW_LETTERS = "ABCDEFGH"
MAX_SLOT = 6  # the 707B mainframe holds six cards
MAX_COLUMN = 12  # an 8x12 matrix card (e.g. 7174A)
_TERMINAL_RE = re.compile(r"^(SMU[1-9]|GNDU|PMU[1-4]-[12])$")
LineKind = Literal["word", "bit"]


def terminal_kind(terminal: str) -> str:
    """``"SMU"``, ``"PMU"`` or ``"GNDU"`` for a terminal name."""
    return "GNDU" if terminal == "GNDU" else terminal[:3]


def pmu_channel_number(terminal: str) -> int:
    """KXCI channel number of a PMU terminal: PMU1-1 -> 1, PMU1-2 -> 2, PMU2-1 -> 3 ..."""
    card, ch = terminal[3:].split("-")
    return 2 * (int(card) - 1) + int(ch)


def smu_number(terminal: str) -> int:
    """SMU number of an SMU terminal: SMU3 -> 3."""
    return int(terminal[3:])


class LineGroup(MemprogModel):
    """Consecutive chip lines on the columns of one matrix card.

    Line ``i`` of the group is wired to column ``columns[i]`` of card ``slot``.
    """

    slot: int = Field(ge=1, le=MAX_SLOT)
    columns: list[int] = Field(min_length=1)

    @field_validator("columns")
    @classmethod
    def _columns_in_range(cls, v: list[int]) -> list[int]:
        for c in v:
            if not 1 <= c <= MAX_COLUMN:
                raise ConfigError("columns", c, f"[1, {MAX_COLUMN}]")
        if len(set(v)) != len(v):
            raise ConfigError("columns", v, "distinct column numbers")
        return v


class CrossbarRoles(MemprogModel):
    """Which terminal does what during a write pulse and during a read."""

    pulse_row: str = Field(description="selected word line during a pulse: V")
    bias_rows: str = Field(description="unselected word lines during a pulse: V/3 (V/2)")
    bias_cols: str = Field(description="unselected bit lines during a pulse: 2V/3 (V/2)")
    pulse_col: str = Field(description="selected bit line during a pulse: 0 V")
    read_force: str = Field(description="selected word line during a read: read voltage")
    read_sense: str = Field(description="selected bit line during a read: 0 V, current measured")
    read_ground: str | None = Field(default=None, description="unselected lines during a read")


@dataclass(frozen=True)
class TerminalRule:
    """What one terminal may be connected to (enforced by the matrix interlock).

    Attributes:
        kinds: line kinds the terminal may touch (``{"word"}``, ``{"bit"}`` or both).
        max_lines: how many chip lines it may touch at once.
    """

    kinds: frozenset[str]
    max_lines: int


class CrossbarWiring(MemprogModel):
    """The ``wiring:`` section of a k4200_707b bench file (see the module docstring)."""

    analyzer: str = Field(default="k4200", min_length=1, description="4200A-SCS instrument name")
    matrix: str = Field(default="k707b", min_length=1, description="707B instrument name")
    rows: dict[str, str] = Field(min_length=1, description="matrix row letter -> terminal")
    word_lines: list[LineGroup]
    bit_lines: list[LineGroup]
    roles: CrossbarRoles

    @field_validator("word_lines", "bit_lines", mode="before")
    @classmethod
    def _one_group_is_a_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("rows")
    @classmethod
    def _rows_valid(cls, v: dict[str, str]) -> dict[str, str]:
        for letter, term in v.items():
            if letter not in ROW_LETTERS or len(letter) != 1:
                raise ConfigError(
                    "rows", letter, f"a matrix row letter {ROW_LETTERS[0]}-{ROW_LETTERS[-1]}"
                )
            if not isinstance(term, str) or not _TERMINAL_RE.match(term):
                raise ConfigError(
                    f"rows.{letter}", term, "SMU1..SMU9, GNDU or PMUn-1/PMUn-2 (n = 1-4)"
                )
        terms = list(v.values())
        dup = {t for t in terms if terms.count(t) > 1}
        if dup:
            raise ConfigError("rows", sorted(dup)[0], "each terminal on one matrix row only")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CrossbarWiring:
        seen: dict[tuple[int, int], str] = {}
        for kind, groups in (("word", self.word_lines), ("bit", self.bit_lines)):
            for g in groups:
                for c in g.columns:
                    key = (g.slot, c)
                    if key in seen:
                        raise ConfigError(
                            f"{kind}_lines",
                            f"slot {g.slot} column {c}",
                            "each matrix column wired to one line",
                            f"already used by a {seen[key]} line",
                        )
                    seen[key] = kind
        terminals = set(self.rows.values())
        r = self.roles
        named = {k: getattr(r, k) for k in CrossbarRoles.model_fields if getattr(r, k) is not None}
        for role, term in named.items():
            if term not in terminals:
                raise ConfigError(
                    f"roles.{role}", term, f"a terminal on a matrix row ({sorted(terminals)})"
                )
        values = list(named.values())
        dup = {t for t in values if values.count(t) > 1}
        if dup:
            raise ConfigError("roles", sorted(dup)[0], "a different terminal for every role")
        for role in ("pulse_row", "bias_rows", "bias_cols"):
            if terminal_kind(named[role]) != "PMU":
                raise ConfigError(
                    f"roles.{role}",
                    named[role],
                    "a PMU channel (PMUn-1/2)",
                    "pulsed lines must be driven by synchronised pulse channels",
                )
        for role in ("read_force", "read_sense"):
            if terminal_kind(named[role]) != "SMU":
                raise ConfigError(f"roles.{role}", named[role], "an SMU (SMU1..SMU9)")
        if r.read_ground is not None and terminal_kind(r.read_ground) == "PMU":
            raise ConfigError("roles.read_ground", r.read_ground, "an SMU or GNDU")
        return self

    # ------------------------------------------------------------------ geometry
    @property
    def n_word_lines(self) -> int:
        """Number of word lines wired."""
        return sum(len(g.columns) for g in self.word_lines)

    @property
    def n_bit_lines(self) -> int:
        """Number of bit lines wired."""
        return sum(len(g.columns) for g in self.bit_lines)

    def check_chip(self, rows: int, cols: int) -> None:
        """ConfigError unless the wiring has exactly one column per chip line."""
        if self.n_word_lines != rows:
            raise ConfigError("wiring.word_lines", self.n_word_lines, f"{rows} columns (chip.rows)")
        if self.n_bit_lines != cols:
            raise ConfigError("wiring.bit_lines", self.n_bit_lines, f"{cols} columns (chip.cols)")

    def line_columns(self, kind: LineKind) -> list[tuple[int, int]]:
        """(slot, column) of every line of ``kind``, in line order."""
        groups = self.word_lines if kind == "word" else self.bit_lines
        return [(g.slot, c) for g in groups for c in g.columns]

    def column_lines(self) -> dict[tuple[int, int], tuple[LineKind, int]]:
        """Map (slot, column) -> (line kind, line index) for every wired column."""
        out: dict[tuple[int, int], tuple[LineKind, int]] = {}
        for kind in ("word", "bit"):
            for i, key in enumerate(self.line_columns(kind)):  # type: ignore[arg-type]
                out[key] = (kind, i)  # type: ignore[assignment]
        return out

    def row_of(self, terminal: str) -> str:
        """Matrix row letter carrying ``terminal``; ConfigError if it is not wired."""
        for letter, term in self.rows.items():
            if term == terminal:
                return letter
        raise ConfigError("terminal", terminal, f"one of {sorted(self.rows.values())}")

    def channel(self, terminal: str, kind: LineKind, index: int) -> str:
        """The 707B channel name connecting ``terminal`` to line ``index`` of ``kind``."""
        slot, col = self.line_columns(kind)[index]
        return f"{slot}{self.row_of(terminal)}{col:02d}"

    def terminal_rules(self) -> dict[str, TerminalRule]:
        """Interlock rules derived from the roles: who may touch which lines, and how many."""
        r = self.roles
        nw, nb = self.n_word_lines, self.n_bit_lines
        word, bit, both = frozenset({"word"}), frozenset({"bit"}), frozenset({"word", "bit"})
        rules = {t: TerminalRule(both, 1) for t in self.rows.values()}  # spare terminals: one line
        rules[r.pulse_row] = TerminalRule(word, 1)
        rules[r.bias_rows] = TerminalRule(word, max(nw - 1, 0))
        rules[r.pulse_col] = TerminalRule(bit, 1)
        rules[r.bias_cols] = TerminalRule(bit, max(nb - 1, 0))
        rules[r.read_force] = TerminalRule(word, 1)
        rules[r.read_sense] = TerminalRule(bit, 1)
        if r.read_ground is not None:
            rules[r.read_ground] = TerminalRule(both, max(nw + nb - 2, 0))
        return rules


def wiring_from_bench(wiring: dict[str, Any], rows: int, cols: int) -> CrossbarWiring:
    """Validate a bench file's ``wiring`` dict for a ``rows`` x ``cols`` chip.

    Errors are ConfigErrors whose parameter starts with ``wiring.``.
    """
    if not wiring:
        raise ConfigError("wiring", wiring, "a wiring section (rows, word_lines, bit_lines, roles)")
    try:
        w = CrossbarWiring(**wiring)
    except ConfigError as exc:
        raise ConfigError(
            f"wiring.{exc.parameter.removeprefix('CrossbarWiring.')}",
            exc.value,
            exc.allowed,
            exc.detail,
        ) from exc
    w.check_chip(rows, cols)
    return w


__all__ = [
    "CrossbarRoles",
    "CrossbarWiring",
    "LineGroup",
    "TerminalRule",
    "pmu_channel_number",
    "smu_number",
    "terminal_kind",
    "wiring_from_bench",
]
