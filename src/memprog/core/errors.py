"""The exception tree of memprog.

Lab users need to tell three kinds of failure apart at a glance: their own input was
wrong (``ConfigError``), the instrument said no (``InstrumentError``), the instrument
said something we could not understand (``ProtocolError``), or memprog refused to send
something that could damage the chip (``SafetyError``). Every message names the
parameter, the value and the allowed range so a script's traceback is enough to fix it.
"""

from __future__ import annotations

from typing import Any


class MemprogError(Exception):
    """Base class of every error memprog raises on purpose."""


class ConfigError(MemprogError, ValueError):
    """Bad configuration or input, detected before anything is sent.

    Subclasses ``ValueError`` so generic callers that catch ``ValueError`` still work.
    """

    def __init__(self, parameter: str, value: Any = None, allowed: str = "", detail: str = ""):
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        self.detail = detail
        msg = f"{parameter}={value!r}"
        if allowed:
            msg += f" is not allowed (allowed: {allowed})"
        if detail:
            msg += f": {detail}" if allowed else f" is not allowed: {detail}"
        if not allowed and not detail:
            msg += " is not allowed"
        super().__init__(msg)


class SafetyError(MemprogError):
    """Refused before sending: the command would exceed the chip's safety limits."""

    def __init__(self, parameter: str, value: Any, allowed: str, detail: str = ""):
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        msg = f"refused {parameter}={value!r}: outside the safety limits ({allowed})"
        if detail:
            msg += f"; {detail}"
        super().__init__(msg)


class InstrumentError(MemprogError):
    """The instrument (or its library) reported an error; carries its code and message."""

    def __init__(self, instrument: str, code: int, message: str, command: str = ""):
        self.instrument = instrument
        self.code = code
        self.message = message
        self.command = command
        text = f"{instrument} error {code}: {message}"
        if command:
            text += f" (after {command!r})"
        super().__init__(text)


class OpenCircuitError(InstrumentError):
    """A read saw (almost) no current: nothing, or the wrong thing, is connected.

    Why a type of its own, here: a lifted probe or a wrong route must never be taken for a
    cell at 0 µS (a write-verify would pulse it harder and harder), and every stack that
    measures current (the B1500's bottom channel, the 4200's sense SMU) raises this one
    class, so a caller catches one thing whatever the bench.
    """


class ProtocolError(MemprogError):
    """A reply could not be parsed: says what was expected and what came back."""

    def __init__(self, expected: str, got: Any, instrument: str = ""):
        self.expected = expected
        self.got = got
        prefix = f"{instrument}: " if instrument else ""
        super().__init__(f"{prefix}expected {expected}, got {got!r}")


class FetchError(MemprogError):
    """A remote input (weights by URL) could not be fetched: names the URL, credentials masked.

    Apart from ``ConfigError`` because the user's input may be right and the network or the
    server wrong (a 404, a refused connection, a truncated body): the CLI exits 3 for it,
    as for an instrument that does not answer.
    """

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"cannot fetch {url}: {reason}")


class ClusterError(MemprogError):
    """A compute cluster (Ray) could not be reached, or lost a chip's worker for good.

    Apart from ``ConfigError`` for the same reason as :class:`FetchError`: the command may be
    right and the cluster down; the CLI exits 3, as for an instrument that does not answer.
    """

    def __init__(self, address: str, reason: str):
        self.address = address
        self.reason = reason
        super().__init__(f"Ray cluster {address}: {reason}")


__all__ = [
    "ClusterError",
    "FetchError",
    "MemprogError",
    "ConfigError",
    "SafetyError",
    "InstrumentError",
    "OpenCircuitError",
    "ProtocolError",
]

