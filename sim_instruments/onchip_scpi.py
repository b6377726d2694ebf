"""The text and binary surface of the simulated on-chip controller: SCPI headers, numbers,
parameter lists and IEEE 488.2 definite-length blocks.

Why a module of its own: every command family of the controller (pulses, reads, VMM,
on-chip programming) parses its parameters and encodes its replies the same way, and a
firmware's parser is where hostile input lands first; kept apart from the physics it can
be read (and fuzzed) on its own. Blocks are encoded and decoded with numpy in one step (no
per-value Python work), so a 65,536-value read costs a few milliseconds.
"""

from __future__ import annotations

from itertools import product

import numpy as np


class CommandError(Exception):
    """A numbered controller error (SCPI negative codes, device-specific positive ones)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message.replace('"', "'")


def expand_header(template: str) -> list[str]:
    """Every accepted spelling of a SCPI header: each node short (upper-case part) or long."""
    nodes = []
    for node in template.split(":"):
        short = "".join(ch for ch in node if not ch.islower())
        forms = {short, node.upper()}
        nodes.append(sorted(forms))
    return [":".join(p) for p in product(*nodes)]


def encode_block(values: np.ndarray, dtype: str) -> bytes:
    """IEEE 488.2 definite-length block of ``values`` (numpy encoding, no per-value work)."""
    data = np.ascontiguousarray(values, dtype=dtype).tobytes()
    n = str(len(data))
    return b"#" + str(len(n)).encode() + n.encode() + data


def decode_block(text: str, dtype: str, record: int = 1) -> np.ndarray:
    """Decode the block that ``text`` holds (it must start at ``#``) into a numpy array."""
    # ASCII digits only: "²".isdigit() is true but int("²") raises
    if len(text) < 2 or text[0] != "#" or text[1] not in "123456789":
        raise CommandError(
            -160, f"Block data error; expected #<n><length><data>, got {text[:12]!r}"
        )
    ndig = int(text[1])
    field = text[2 : 2 + ndig]
    if len(field) != ndig or not (field.isascii() and field.isdigit()):
        raise CommandError(-160, f"Block data error; bad length field {field!r}")
    length = int(field)
    data = text[2 + ndig :]
    if len(data) != length:
        raise CommandError(
            -160, f"Block data error; header announces {length} bytes, {len(data)} follow"
        )
    size = np.dtype(dtype).itemsize * record
    if length % size:
        raise CommandError(
            -161, f"Invalid block data; {length} bytes is not a whole number of {size}-byte records"
        )
    return np.frombuffer(data.encode("latin-1"), dtype=dtype)


def parse_number(token: str, name: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise CommandError(
            -104, f"Data type error; {name} {token.strip()!r} is not a number"
        ) from None


def parse_integer(token: str, name: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise CommandError(
            -104, f"Data type error; {name} {token.strip()[:40]!r} is not an integer"
        ) from None
    if not -(2**31) <= value < 2**31:  # no parameter is larger; numpy int64 arrays would overflow
        raise CommandError(-222, f"Data out of range; {name} {value:.3g}, allowed 32-bit integers")
    return value


def split_fields(args: str, names: tuple[str, ...], optional: int = 0) -> list[str]:
    """Split comma-separated parameters, checking their count."""
    parts = [a for a in args.split(",")] if args.strip() else []
    need = len(names) - optional
    if len(parts) < need:
        raise CommandError(-109, f"Missing parameter; expected {', '.join(names)}")
    if len(parts) > len(names):
        raise CommandError(-108, f"Parameter not allowed; expected at most {', '.join(names)}")
    return parts
