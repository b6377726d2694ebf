"""Shared pieces of the property-based fuzzers (tests/test_fuzz_*.py, benchmarks/fuzz_long.py).

The fuzzers' contract: random, truncated or mutated input to a command builder, a reply
parser or a served instrument's message handler ends in a valid result or a typed
memprog error (:class:`memprog.core.errors.MemprogError`), never another exception, a crash
or an unbounded allocation. The budget (examples per property) is
``MEMPROG_FUZZ_EXAMPLES`` (default :data:`DEFAULT_EXAMPLES`, small enough for CI);
``benchmarks/fuzz_long.py`` runs the same properties with a much larger one.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = 80


def examples(default: int = DEFAULT_EXAMPLES) -> int:
    """Examples per property: ``MEMPROG_FUZZ_EXAMPLES`` or ``default``."""
    try:
        return max(int(os.environ.get("MEMPROG_FUZZ_EXAMPLES", default)), 1)
    except ValueError:
        return default


def fuzz_settings(default: int = DEFAULT_EXAMPLES) -> settings:
    """Bounded, deadline-free settings (no timed assertions: the machine is shared)."""
    return settings(
        max_examples=examples(default),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


#: characters a reply or message is made of: ASCII (printable and controls), digits of other
#: scripts (``str.isdigit`` says yes, ``int()`` may say no), and a few wide characters
_CHARS = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=127),
    st.sampled_from("²³¹٣۴߀０\u00a0\u2028é€\ufeff"),
)
TEXT = st.text(_CHARS, max_size=80)

#: numbers as text, including the ones float() accepts but int() does not
NUMBER_TEXT = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "1e999", "-0", "+-5", "1_0", "0x10", "9" * 30, "1e-400", "²"]),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@st.composite
def mutated(draw: st.DrawFn, corpus: list[str]) -> str:
    """A valid message or reply from ``corpus``, then truncated, spliced or renumbered."""
    base = draw(st.sampled_from(corpus))
    how = draw(st.sampled_from(["as_is", "truncate", "insert", "renumber", "repeat", "strip"]))
    if how == "truncate":
        return base[: draw(st.integers(0, max(len(base) - 1, 0)))]
    if how == "insert":
        k = draw(st.integers(0, len(base)))
        return base[:k] + draw(TEXT) + base[k:]
    if how == "renumber":
        import re

        parts = re.split(r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)", base)
        for i in range(1, len(parts), 2):
            if draw(st.booleans()):
                parts[i] = draw(NUMBER_TEXT)
        return "".join(parts)
    if how == "repeat":
        return base * draw(st.integers(2, 4))
    if how == "strip":
        return base.strip(draw(st.sampled_from([" ", ",", "\"", "\t", "#"])))
    return base


def message_text(corpus: list[str]) -> st.SearchStrategy[str]:
    """Random text or a mutated valid message (most examples near-valid, where bugs hide)."""
    return st.one_of(TEXT, mutated(corpus), mutated(corpus))
