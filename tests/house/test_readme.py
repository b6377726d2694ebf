"""The README's Python examples run as written (from the checkout root, as a user would) and
what they print is what the README says they do: tuned cells within tolerance, retention
lines that count every cell, a fraction that is a fraction. The examples that moved to docs/
with their text run the same way.

The README is a guide a newcomer can read (at most 350 lines, the measurement logs live in
docs/), so what it promises is checked too: every relative link in README.md and docs/*.md
reaches a file (and a heading, where it names one), every repository path it names exists
after a refactor, every ``memprog.x.y`` name it names imports, and its command table has a
line for every command the CLI has."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
import typer

from memprog.cli import app

ROOT = Path(__file__).resolve().parents[2]
# the README and every doc: an example keeps being run when it follows its text to docs/
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [
    (page.relative_to(ROOT).as_posix(), i, code)
    for page in PAGES
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
]
BLOCKS = [code for _page, _i, code in EXAMPLES]


def test_readme_has_examples():
    assert BLOCKS, "the README shows a lab script"
    assert any(page == "README.md" and "open_bench" in code for page, _i, code in EXAMPLES), (
        "the README itself shows the lab script a newcomer runs"
    )
    # the examples that moved to docs/ with their text (retention, hardware-aware training)
    # are still there, so the checks below still run on them
    for name in ("tune_alibart", "retention_check", "fraction_correct_in_at_least_95pct"):
        assert any(name in code for code in BLOCKS), f"no example calls {name} any more"


def _check_tuned(ns: dict, out: str) -> None:
    """A block that tunes cells: every cell it tuned ends within its tolerance."""
    res = ns["res"]
    err = np.abs(np.asarray(res.final_us) - np.asarray(res.target_us))
    assert (err <= np.asarray(res.tolerance_us)).all(), (res.final_us, res.target_us)
    assert np.asarray(res.within_tolerance).all()


def _check_retention(out: str) -> None:
    """Retention lines: 'after T s: k/n within tolerance', one per delay, every cell kept."""
    counts = re.findall(r"after (\S+) s: (\d+)/(\d+) within tolerance", out)
    assert len(counts) >= 2, out
    for _delay, k, n in counts:
        assert int(n) > 0 and int(k) == int(n), out


def _check_fraction(out: str) -> None:
    """The hardware-aware example prints the fraction of points in the >= 95 % bins."""
    value = float(out.strip().splitlines()[-1])
    assert 0.0 < value <= 1.0, out


@pytest.mark.parametrize(
    ("page", "code"),
    [(p, c) for p, _i, c in EXAMPLES],
    ids=[f"{p}:block{i}" for p, i, _c in EXAMPLES],
)
def test_readme_example_runs(page, code, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    ns = {"__name__": "__readme__"}
    exec(compile(code, page, "exec"), ns)
    out = capsys.readouterr().out
    assert out.strip(), "the example prints what it measured"
    checked = False
    if "tune_alibart" in code:
        _check_tuned(ns, out)
        checked = True
    if "retention_check" in code:
        _check_retention(out)
        checked = True
    if "fraction_correct_in_at_least_95pct" in code:
        _check_fraction(out)
        checked = True
    assert checked, "a README example this test does not know how to check: add its check here"


# ---------------------------------------------------------------- the README as a guide

README_MAX_LINES = 350
# folders of the checkout a path in the docs may start with (a `src/...` path names a file
# of the package; `protocols/settle.py` one of the card's top-level folders)
REPO_ROOTS = (
    "src/", "tests/", "benchmarks/", "benches/", "drivers/", "protocols/", "sim_instruments/",
    "notebooks/", "docs/", ".ci/",
)  # fmt: skip


def _text_outside_code(page: Path) -> str:
    """The page without its fenced code blocks: a link or a path inside a shell example is
    something a user types, not something the docs point to."""
    return re.sub(r"```.*?```", "", page.read_text(), flags=re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", _text_outside_code(page), flags=re.M)
    return {_slug(h) for h in headings}


def test_readme_is_a_guide_of_at_most_350_lines():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, (
        f"README.md has {n} lines (at most {README_MAX_LINES}: logs go to docs/)"
    )


def test_every_doc_says_what_it_holds():
    """Each doc opens with its title and one paragraph saying what it holds."""
    for page in PAGES[1:]:
        lines = page.read_text().splitlines()
        assert lines and lines[0].startswith("# "), page.name
        first = next((ln for ln in lines[1:] if ln.strip()), "")
        assert first and not first.startswith(("#", "|", "```", "-")), (page.name, first)


def test_every_relative_link_reaches_a_file_and_heading():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _text_outside_code(page)):
            if re.match(r"[a-z]+:", target):  # http://, https://, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_repository_path_named_exists():
    """After the house moved (issue 22), a path the docs name is where they say."""
    missing = []
    for page in PAGES:
        for token in re.findall(r"`([^`\s]+)`", _text_outside_code(page)):
            token = token.rstrip(".,;:")
            if not token.startswith(REPO_ROOTS) or "<" in token:
                continue
            found = list(ROOT.glob(token)) if "*" in token else [ROOT / token]
            if not found or not all(p.exists() for p in found):
                missing.append(f"{page.name}: {token}")
    assert not missing, "\n".join(missing)


def test_every_python_name_named_imports():
    """``memprog.x.y`` names in the docs (modules, functions, classes) resolve after the move."""
    stale = []
    for page in PAGES:
        for name in set(re.findall(r"`(memprog(?:\.\w+)+)(?=[`(])", page.read_text())):
            parts = name.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                    break
                except ModuleNotFoundError:
                    continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                stale.append(f"{page.name}: {name}")
    assert not stale, "\n".join(stale)


def test_command_table_has_every_command():
    """The README's command table has one line for every command the CLI has."""

    def walk(cmd, path=()):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield " ".join(path)

    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `memprog ([^`|\\]+)", readme, flags=re.M)
    listed = {row.strip() for row in rows}
    commands = set(walk(typer.main.get_command(app)))
    absent = sorted(c for c in commands if not any(r == c or r.startswith(c + " ") for r in listed))
    assert commands and not absent, f"README's command table misses {absent}"
