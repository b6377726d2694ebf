"""Property-based fuzzing of every instrument language's builders and parsers (issue 21).

Backend: none (pure functions of ``drivers/*_commands.py`` and ``drivers/transport.py``).

Property: for random, truncated or mutated input, a command builder returns its message
(a ``str``) and a reply parser returns a value, or either raises a typed memprog error
(:class:`~memprog.core.errors.MemprogError`); any other exception is a defect (the driver
would crash with a traceback instead of naming what the instrument said). Builders are
called with arguments of their annotated types and arbitrary values (NaN, inf, negative,
huge), parsers with random text and with mutations of real replies. Budget:
``MEMPROG_FUZZ_EXAMPLES`` examples per property (see tests/fuzz_support.py).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memprog.core.errors import ConfigError, MemprogError, ProtocolError
from memprog.drivers import flex_commands, kxci_commands, onchip_commands, tsp_commands
from memprog.drivers.transport import make_block, parse_block
from tests.fuzz_support import NUMBER_TEXT, TEXT, fuzz_settings, message_text

# hostile values (inf, NaN, 1e308) make numpy warn about overflow on the way to an answer
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

MODULES = [flex_commands, kxci_commands, tsp_commands, onchip_commands]

INTS = st.one_of(st.integers(-3, 300), st.integers(-(2**63), 2**63))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SCALARS = st.one_of(INTS, FLOATS, TEXT, st.booleans(), st.none())


def _public(module: object, prefix: str = "") -> list[tuple[str, Callable]]:
    return [
        (name, fn)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_")
        and name.startswith(prefix)
    ]


def _strategy(hint: object) -> st.SearchStrategy:
    """Values of an annotated type (every value of it, not only the sensible ones)."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if hint is int:
        return INTS
    if hint is float:
        return st.one_of(FLOATS, INTS)
    if hint is bool:
        return st.booleans()
    if hint is str:
        return TEXT
    if hint is object:
        return st.one_of(st.lists(st.one_of(FLOATS, st.none()), max_size=6), FLOATS, TEXT)
    if hint is type(None):
        return st.none()
    if hint is onchip_commands.ProgramPulses:
        return st.builds(onchip_commands.ProgramPulses, FLOATS, FLOATS, FLOATS, FLOATS)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return st.one_of(*[_strategy(a) for a in args])
    if origin in (list, tuple, Iterable) or (origin is not None and issubclass(origin, Iterable)):
        inner = args[0] if args else object
        return st.lists(SCALARS if inner is object else _strategy(inner), max_size=8)
    raise LookupError(hint)


def _builders() -> list[tuple[str, Callable, dict[str, st.SearchStrategy]]]:
    out = []
    for module in MODULES:
        for name, fn in _public(module):
            if name.startswith("parse_") or name in {"values_of", "check_ack", "raise_if_error"}:
                continue
            hints = typing.get_type_hints(fn)
            hints.pop("return", None)
            if any(h is np.ndarray for h in hints.values()):
                continue  # array builders: test_array_builders
            out.append((f"{module.__name__.rsplit('.', 1)[1]}.{name}", fn, {k: _strategy(h) for k, h in hints.items()}))
    return out


BUILDERS = _builders()


def _typed_or_value(fn: Callable, *args: object, **kwargs: object) -> object:
    try:
        return fn(*args, **kwargs)
    except MemprogError as exc:
        assert str(exc)  # a typed error says what was wrong
        return exc


@pytest.mark.slow
@pytest.mark.parametrize("name,fn,strategies", BUILDERS, ids=[b[0] for b in BUILDERS])
def test_builders_give_a_message_or_a_typed_error(name, fn, strategies):
    @fuzz_settings(40)
    @given(st.fixed_dictionaries(strategies))
    def run(kwargs):
        out = _typed_or_value(fn, **kwargs)
        if not isinstance(out, MemprogError):
            assert isinstance(out, str | int | float | list | tuple | set | np.ndarray), (name, out)
            if isinstance(out, str):  # a message never carries a terminator of its own
                assert "\n" not in out and "\0" not in out, (name, kwargs, out)

    run()


@fuzz_settings()
@given(
    n=st.integers(0, 40),
    k=st.integers(0, 6),
    row=INTS,
    reads=INTS,
    width=FLOATS,
    data=st.data(),
)
def test_array_builders_give_a_message_or_a_typed_error(n, k, row, reads, width, data):
    """The on-chip controller's batch builders (arrays of one length, any values)."""
    ints = data.draw(st.lists(st.integers(-5, 70000), min_size=n, max_size=n))
    cols = np.asarray(ints, dtype=np.int64)
    vals = [np.asarray(data.draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype=float) for _ in range(3)]
    widths = np.asarray(data.draw(st.lists(FLOATS, min_size=k, max_size=k)), dtype=float)
    amps = np.asarray(data.draw(st.lists(FLOATS, min_size=n * k, max_size=n * k)), dtype=float).reshape(n, k)
    c = onchip_commands
    for fn, args in [
        (c.pulse_row, (row, width, cols, vals[0], vals[1])),
        (c.pulse_read, (row, reads, width, widths, cols, vals[0], amps)),
        (c.read_burst, (row, reads, width, cols)),
        (c.pulse_rows_records, (cols, cols, vals[0], vals[1])),
        (c.selection_records, (np.abs(cols) % 256, np.abs(cols) % 256)),
        (c.levels_for, (vals[2], 10.0, 200.0)),
    ]:
        out = _typed_or_value(fn, *args)
        if isinstance(out, str):
            assert "\n" not in out


# ----------------------------------------------------------------------------- parsers
#: real replies of each language, mutated by the fuzzers
REPLIES = [
    '+0,"No Error."', '+100,"Undefined GPIB command."', "B1511B,0;B1530A,0;0,0;0,0",
    "NAI+012.345E-06", "NAI+1.234E-06,NBV+0.500E+00", "+012.345E-06", "CAI+199.999E+99",
    "ACK", "ERROR -100: unrecognised command", "NAI1.2345E-05", "N 1.2E-03", "0", "1",
    "RETURN VALUE = 0", "PARAM VALUE = 1.0;2.0;3.0", "1.00000e+00", "nil", "1A01;1B02",
    "1001\tQueue empty\t0\t1", '0,"No error"', 'ERR -113,"Undefined header"',
    "MEMPROG,ONCHIP-256,SN1,1.0", "256,256,0,3,1200,0.25", "RUN,0.5", "DONE", "IDLE",
    "2,0.5,0.2,1e-08,1e-05", "SMU1 4210-SMU,SMU2 4210-SMU,PMU1 4225-PMU,RPM1 4225-RPM",
]

PARSERS = [
    (f"{m.__name__.rsplit('.', 1)[1]}.{name}", fn)
    for m in MODULES
    for name, fn in _public(m, "parse_")
] + [
    ("flex.channel_of_letter", flex_commands.channel_of_letter),
    ("kxci.check_ack", kxci_commands.check_ack),
    ("kxci.raise_if_error", kxci_commands.raise_if_error),
    ("kxci.parse_options", kxci_commands.parse_options),
    ("tsp.parse_channel", tsp_commands.parse_channel),
    ("tsp.expand_channels", tsp_commands.expand_channels),
]


def _parser_kwargs(fn: Callable, data: st.DataObject) -> dict[str, object]:
    """Every argument after the reply: counts small, names short."""
    out: dict[str, object] = {}
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        if p.name == "count":
            out[p.name] = data.draw(st.integers(0, 8))
        elif p.default is inspect.Parameter.empty:
            out[p.name] = "X"
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name,fn", PARSERS, ids=[p[0] for p in PARSERS])
def test_parsers_give_a_value_or_a_typed_error(name, fn):
    @fuzz_settings()
    @given(message_text(REPLIES), st.data())
    def run(reply, data):
        _typed_or_value(fn, reply, **_parser_kwargs(fn, data))

    run()


def test_flex_values_of_checks_status_with_typed_errors():
    """values_of: every status letter a FLEX reply can carry ends in a value or a typed error."""

    @fuzz_settings()
    @given(message_text(REPLIES))
    def run(reply):
        try:
            readings = flex_commands.parse_data(reply)
        except MemprogError:
            return
        _typed_or_value(flex_commands.values_of, readings)

    run()


# ------------------------------------------------------------------ IEEE 488.2 blocks
@fuzz_settings()
@given(
    values=st.lists(st.floats(width=32, allow_nan=False), max_size=20),
    cut=st.integers(0, 200),
    junk=st.binary(max_size=8),
    dtype=st.sampled_from(["f", "d", "H", "B", "i"]),
    big=st.booleans(),
)
def test_block_parser_round_trips_and_refuses_truncation(values, cut, junk, dtype, big):
    """A whole block parses back to its values; a cut or spliced one is a ProtocolError."""
    vals = np.asarray(values, dtype=float)
    if dtype in "HBi":
        vals = np.abs(np.nan_to_num(vals)).astype(np.int64) % 200
    block = make_block(vals, dtype, big)
    got = parse_block(block, dtype, big)
    assert np.array_equal(got, np.asarray(vals).astype(np.dtype(dtype))), (block, got)
    mutated = block[:cut] + junk
    out = _typed_or_value(parse_block, mutated, dtype, big)
    if not isinstance(out, MemprogError):
        assert isinstance(out, np.ndarray) and out.dtype.itemsize == np.dtype(dtype).itemsize


@fuzz_settings()
@given(
    raw=st.one_of(
        st.binary(max_size=60),
        st.builds(lambda d, n: b"#" + d + n, st.sampled_from([b"1", b"9", b"0", b"2", b"\xd9"]), st.binary(max_size=20)),
        NUMBER_TEXT.map(lambda s: b"#" + str(len(s)).encode()[:1] + s.encode("utf-8")),
    ),
    dtype=st.sampled_from(["f", "d", "B"]),
)
def test_block_parser_random_bytes_are_refused_with_protocol_errors(raw, dtype):
    out = _typed_or_value(parse_block, raw, dtype, False)
    if not isinstance(out, MemprogError):
        assert isinstance(out, np.ndarray)


def test_the_fuzzers_can_fail():
    """A parser that raises an untyped exception is caught by the property (no false pass)."""

    def bad_parser(reply: str) -> int:
        return int(reply)

    @fuzz_settings(30)
    @given(message_text(REPLIES))
    def run(reply):
        _typed_or_value(bad_parser, reply)

    with pytest.raises(ValueError):
        run()


# ---------------------------------------------------------- what the fuzzers found (issue 21)
FOUND = [
    # revision "²": str.isdigit() says yes, int() says no (was ValueError)
    (flex_commands.parse_unt, ("B1511B,²",), ProtocolError),
    (flex_commands.parse_unt, ("B1511B,+-5",), ProtocolError),  # lstrip("+-") let it through
    (kxci_commands.parse_status_byte, ("INF",), ProtocolError),  # was OverflowError
    (kxci_commands.parse_test_status, ("INF",), ProtocolError),  # was OverflowError
    (tsp_commands.parse_error, ("INF\tQueue\t0\t1",), ProtocolError),  # was OverflowError
    # a channel list is pasted into a Lua string: a quote or newline ran code on the switch
    (tsp_commands.close, ('1A01") reset() --',), ConfigError),
    (tsp_commands.open_, ("1A01\nreset()",), ConfigError),
    (tsp_commands.get_closed, ("\0",), ConfigError),
    (onchip_commands.levels_for, ("", 10.0, 200.0), ConfigError),  # was ValueError
]


@pytest.mark.parametrize("fn,args,error", FOUND, ids=[f"{f.__name__}{a!r}" for f, a, _ in FOUND])
def test_fuzz_findings_are_typed_errors_now(fn, args, error):
    with pytest.raises(error) as info:
        fn(*args)
    assert repr(args[0]) in str(info.value)  # the message names the value


def test_channel_lists_the_driver_sends_still_build():
    assert tsp_commands.close("1A01:1A03,2B05") == 'channel.close("1A01:1A03,2B05")'
    assert tsp_commands.open_("allslots") == 'channel.open("allslots")'
    assert flex_commands.parse_unt("B1511B,0;B1530A,+1;0,0")[1].revision == 1


@pytest.mark.parametrize(
    "fn,args",
    [
        (kxci_commands.data_output, ("I1\n",)),
        (kxci_commands.x_axis, ("V1\n", 0.0, 1.0)),
        (kxci_commands.gn, ("I\n", 3)),
        (kxci_commands.ex, ("memprog_sim\n", "smu_read", ())),
        (tsp_commands.close, ("1A01\n",)),
    ],
)
def test_a_final_newline_is_not_a_valid_name(fn, args):
    """Found by the long fuzz run: ``re.match("...$")`` accepts "I1\\n", and the newline
    ends the message on the instrument (the rest of the line runs as a new command)."""
    with pytest.raises(ConfigError):
        fn(*args)
