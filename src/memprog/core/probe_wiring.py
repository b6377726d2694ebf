"""Wiring of a probe-station bench: which WGFMU channel's probe lands on which chip pad.

Read by the b1500_wgfmu stack (to know which device it can address and which channel
forces or senses it) and by the simulated B1500 (to connect the same channels to the same
pads of the simulated chip), so the lab and the simulator are wired by one section of the
bench file::

    wiring:
      mainframe: b1500        # instrument name of the B1500A (kind b1500)
      wgfmu: wgfmu            # instrument name of the WGFMU library (kind wgfmu)
      pads:                   # WGFMU channel id -> pad its probe needle touches
        101: top0             # top electrode of the chip's row 0
        102: bottom1          # bottom electrode of column 1  -> device (0, 1) is probed
      rsu:                    # optional: SMU channel -> WGFMU channel whose RSU it feeds
        2: 101
        3: 102

A chip pad is ``top<i>`` (the top electrode of row ``i``, the chip's word line) or
``bottom<j>`` (the bottom electrode of column ``j``, its bit line); a positive voltage
from top to bottom is a SET. A device (i, j) is addressable when both its pads are under
probes. Several devices can be probed at once if they share one electrode (one pad on one
side, several on the other): the stack then drives the unselected pads of the other side
with the common pad's waveform, so their devices see 0 V. Pads without a probe float.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from memprog.core.errors import ConfigError
from memprog.core.validation import MemprogModel

_PAD = re.compile(r"^(top|bottom)(\d+)$")


def parse_pad(pad: str) -> tuple[Literal["top", "bottom"], int]:
    """``"top0"`` -> ("top", 0); ConfigError for anything else."""
    m = _PAD.match(str(pad).strip().lower())
    if not m:
        raise ConfigError("wiring.pads", pad, "'top<row>' or 'bottom<column>', e.g. top0, bottom3")
    return m.group(1), int(m.group(2))  # type: ignore[return-value]


def wgfmu_channel_ok(ch: int) -> bool:
    """True for a WGFMU channel id: slot (1-10) x 100 + channel (1 or 2)."""
    return 1 <= ch // 100 <= 10 and ch % 100 in (1, 2)


class ProbeWiring(MemprogModel):
    """The ``wiring`` section of a b1500_wgfmu bench (see the module docstring)."""

    mainframe: str = Field(default="b1500", min_length=1)
    wgfmu: str = Field(default="wgfmu", min_length=1)
    pads: dict[int, str]
    rsu: dict[int, int] = Field(default_factory=dict)

    @field_validator("pads")
    @classmethod
    def _pads(cls, v: dict[int, str]) -> dict[int, str]:
        if not v:
            raise ValueError("at least one top and one bottom pad")
        seen: dict[str, int] = {}
        out = {}
        for ch, pad in v.items():
            if not wgfmu_channel_ok(int(ch)):
                raise ConfigError(
                    "wiring.pads", ch, "WGFMU channel ids slot*100+1 or +2 (101, 102, 201, ...)"
                )
            side, idx = parse_pad(pad)
            key = f"{side}{idx}"
            if key in seen:
                raise ConfigError(
                    "wiring.pads", key, f"one probe per pad (channels {seen[key]} and {ch})"
                )
            seen[key] = int(ch)
            out[int(ch)] = key
        return out

    @field_validator("rsu")
    @classmethod
    def _rsu(cls, v: dict[int, int]) -> dict[int, int]:
        used: set[int] = set()
        for smu, ch in v.items():
            if not 1 <= int(smu) <= 10:
                raise ConfigError("wiring.rsu", smu, "an SMU channel number 1-10")
            if not wgfmu_channel_ok(int(ch)):
                raise ConfigError("wiring.rsu", ch, "a WGFMU channel id (101, 102, ...)")
            if ch in used:
                raise ConfigError("wiring.rsu", ch, "one SMU per RSU")
            used.add(int(ch))
        return {int(k): int(x) for k, x in v.items()}

    @model_validator(mode="after")
    def _one_common_electrode(self) -> ProbeWiring:
        tops = self.side_pads("top")
        bottoms = self.side_pads("bottom")
        if not tops or not bottoms:
            raise ConfigError(
                "wiring.pads", self.pads, "at least one top and one bottom pad under probes"
            )
        if len(tops) > 1 and len(bottoms) > 1:
            raise ConfigError(
                "wiring.pads",
                self.pads,
                "one common electrode: a single top pad or a single bottom pad",
                "with several pads on both sides an unselected device would see a full reverse pulse",
            )
        return self

    # ------------------------------------------------------------------ queries
    def side_pads(self, side: str) -> dict[int, int]:
        """{pad index: channel} of the pads of one side (``top`` or ``bottom``)."""
        out = {}
        for ch, pad in self.pads.items():
            s, i = parse_pad(pad)
            if s == side:
                out[i] = ch
        return out

    @property
    def common_side(self) -> Literal["top", "bottom"]:
        """The side holding a single pad (``top`` when both do)."""
        return "top" if len(self.side_pads("top")) == 1 else "bottom"

    def devices(self) -> list[tuple[int, int]]:
        """Every (row, column) whose two pads are under probes, in row-major order."""
        return sorted((r, c) for r in self.side_pads("top") for c in self.side_pads("bottom"))

    def channels_of(self, row: int, col: int) -> tuple[int, int]:
        """(top channel, bottom channel) of device (row, col); ConfigError if not probed."""
        tops, bottoms = self.side_pads("top"), self.side_pads("bottom")
        if row not in tops or col not in bottoms:
            raise ConfigError(
                "cell",
                (int(row), int(col)),
                f"a device under the probes {self.devices()}",
                "move the probes and edit wiring.pads to reach another device",
            )
        return tops[row], bottoms[col]

    def check_chip(self, rows: int, cols: int) -> None:
        """ConfigError if a pad lies outside a ``rows`` x ``cols`` chip."""
        for ch, pad in self.pads.items():
            side, i = parse_pad(pad)
            n = rows if side == "top" else cols
            if i >= n:
                raise ConfigError(
                    f"wiring.pads.{ch}", pad, f"{side}0..{side}{n - 1} on a {rows}x{cols} chip"
                )


def probe_wiring_from_bench(wiring: dict[str, Any], rows: int, cols: int) -> ProbeWiring:
    """Validate a bench file's ``wiring`` section as probe wiring on a rows x cols chip."""
    try:
        w = ProbeWiring(**wiring)
    except ConfigError as exc:
        name = exc.parameter.removeprefix("ProbeWiring.")
        if not name.startswith("wiring"):
            name = f"wiring.{name}"
        raise ConfigError(name, exc.value, exc.allowed, exc.detail) from exc
    w.check_chip(rows, cols)
    return w


__all__ = ["ProbeWiring", "parse_pad", "probe_wiring_from_bench", "wgfmu_channel_ok"]
