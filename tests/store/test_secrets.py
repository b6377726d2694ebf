"""Secrets never printed (issue 21, defects 6 and 11): no password, URL query credential or
dashboard token on stdout or stderr, whatever command gets the URL and however it fails;
a refused request to the dashboard is cheap (no Nagle/delayed-ACK stall) and still 401."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from typer.testing import CliRunner

from memprog.cli import app
from memprog.store import mask_url, open_store
from memprog.store.urls import check_url, scrub, url_secrets
from tests.dashboard_helpers import ThreadServer, add_characterize_run, add_ladder_run

SECRET = "Zq7Xv9Kw4Jp"  # no 4-character piece of it occurs in a path or a message


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _urls() -> dict[str, str]:
    port = _closed_port()
    return {
        "netloc": f"postgresql+psycopg://lab:{SECRET}@127.0.0.1:{port}/mem",
        "query": f"postgresql+psycopg://127.0.0.1:{port}/mem?user=lab&password={SECRET}",
        "query-token": f"postgresql+psycopg://lab@127.0.0.1:{port}/mem?sslpassword={SECRET}&application_name=x",
        "unescaped-at-slash": f"postgresql+psycopg://lab:{SECRET[:4]}@{SECRET[4:7]}/{SECRET[7:]}@127.0.0.1:{port}/mem",
        "bogus-scheme": f"bogus://lab:{SECRET}@127.0.0.1:{port}/mem",
        "sqlite-query": f"sqlite:////dev/null/x.sqlite?password={SECRET}",
    }


def _leaks(text: str) -> list[str]:
    """Any 4+ character piece of the secret that made it into ``text``."""
    pieces = {SECRET[i : i + n] for n in (4, 5, 6) for i in range(len(SECRET) - n + 1)}
    return sorted(p for p in pieces if p in text)


COMMANDS = ["levels", "tune", "program", "characterize", "insitu", "train", "evaluate", "db summary",
            "db runs", "db export", "db export-variability", "db import-variability", "db upgrade",
            "db reap", "db variability", "dashboard"]  # fmt: skip


@pytest.fixture(scope="module")
def commands(tmp_path_factory) -> dict[str, list[str]]:
    """Every command that takes ``--db``, with arguments that get it as far as the store."""
    from memprog.store import VariabilityDB

    tmp_path = tmp_path_factory.mktemp("dbcmds")

    w = open_store(f"sqlite:///{tmp_path / 'src.sqlite'}")
    add_characterize_run(w, "chip-A", 0)
    w.close()
    pq = tmp_path / "var.parquet"
    vdb = VariabilityDB(f"sqlite:///{tmp_path / 'src.sqlite'}")
    vdb.export_parquet(pq)
    vdb.close()
    weights = tmp_path / "w.pt"
    r = _runner().invoke(app, ["train", "--dataset", "halfmoons", "--epochs", "1", "--out", str(weights), "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    return {
        "levels": ["levels", "--levels", "3", "--out", str(tmp_path / "l.png")],
        "tune": ["tune", "--rows", "0", "--cols", "0", "--target-us", "200"],
        "program": ["program", "--example", "digits", "--out", str(tmp_path / "rep")],
        "characterize": ["characterize", "--devices", "1", "--levels", "2", "--repeats", "1"],
        "insitu": ["insitu", "--epochs", "0"],
        "train": ["train", "--dataset", "halfmoons", "--epochs", "1", "--out", str(tmp_path / "w2.pt")],
        "evaluate": ["evaluate", str(weights), "--transfers", "2"],
        "db summary": ["db", "summary"],
        "db runs": ["db", "runs"],
        "db export": ["db", "export", "--run", "0123456789ab", "--out", str(tmp_path / "c.csv")],
        "db export-variability": ["db", "export-variability", "--out", str(tmp_path / "v.parquet")],
        "db import-variability": ["db", "import-variability", str(pq)],
        "db upgrade": ["db", "upgrade"],
        "db reap": ["db", "reap"],
        "db variability": ["db", "variability"],
        "dashboard": ["dashboard", "--port", "0"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_no_command_taking_db_prints_the_password(name, commands, tmp_path, monkeypatch):
    """Every command with ``--db``, every way a URL can carry a password (half of them with
    --json): exit 2 (bad URL) or 3, no traceback, no piece of the password anywhere."""
    import memprog.dashboard.server as server

    monkeypatch.setattr(server, "serve", lambda prep: None)  # never block on a served socket
    monkeypatch.chdir(tmp_path)
    args = commands[name]
    r = _runner()
    for i, (label, url) in enumerate(_urls().items()):
        extra = ["--json"] if i % 2 else []
        res = r.invoke(app, [*args, "--db", url, *extra])
        text = res.stdout + res.stderr
        where = f"{name} with a {label} URL {extra}: {text!r}"
        assert res.exit_code in (2, 3), where
        assert not _leaks(text), where
        assert "Traceback" not in text and res.stderr.strip(), where
        if res.exception is not None:
            assert isinstance(res.exception, SystemExit), where


def test_an_unescaped_at_or_slash_is_named_in_one_line():
    url = _urls()["unescaped-at-slash"]
    res = _runner().invoke(app, ["db", "summary", "--db", url])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "%40" in res.stderr and "unescaped" in res.stderr
    assert not _leaks(res.stderr)


def test_mask_url_hides_netloc_and_query_credentials():
    assert mask_url("postgresql+psycopg://lab:s3cret@db.example/mem") == "postgresql+psycopg://lab:***@db.example/mem"
    assert mask_url(f"postgresql://h/db?user=u&password={SECRET}") == "postgresql://h/db?user=u&password=***"
    assert mask_url(f"postgresql://h/db?api_key={SECRET}&Token={SECRET}&sslmode=require") == (
        "postgresql://h/db?api_key=***&Token=***&sslmode=require"
    )
    assert SECRET not in mask_url(f"not a url://lab:{SECRET}@x")
    assert mask_url("sqlite:////home/a@b/memprog.sqlite") == "sqlite:////home/a@b/memprog.sqlite"
    masked = mask_url(f"postgresql://lab:{SECRET[:4]}@{SECRET[4:]}@host/db")
    assert not _leaks(masked) and masked.endswith("@host/db")


def test_scrub_removes_secrets_a_driver_quotes_back():
    url = f"postgresql://lab:p%40{SECRET}@h/db?password={SECRET}x"
    msg = f"invalid dsn: password=p@{SECRET} ... password={SECRET}x"
    assert not _leaks(scrub(msg, url))
    assert f"p@{SECRET}" in url_secrets(url)
    with pytest.raises(Exception, match="unescaped"):
        check_url("postgresql://lab:a/b@h/db")
    check_url("postgresql://lab:a%2Fb@h/db")  # percent-encoded: fine


def test_dashboard_never_prints_a_token_from_the_environment(tmp_path, monkeypatch):
    import memprog.dashboard.server as server

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    w = open_store(url)
    add_ladder_run(w, 5)
    w.close()
    served = []
    monkeypatch.setattr(server, "serve", lambda prep: served.append(prep.token))
    token = "env-" + SECRET
    monkeypatch.setenv("MEMPROG_DASHBOARD_TOKEN", token)
    for extra in ([], ["--json"]):
        res = _runner().invoke(app, ["dashboard", "--db", url, "--port", "0", *extra])
        assert res.exit_code == 0, res.output
        assert token not in res.stdout + res.stderr and not _leaks(res.stdout + res.stderr)
        if extra:
            assert json.loads(res.stdout)["token_required"] is True
        else:
            assert "token from $MEMPROG_DASHBOARD_TOKEN" in res.stdout
    assert served == [token, token]  # the server still got it
    res = _runner().invoke(app, ["dashboard", "--db", url, "--port", "0", "--token", "cli-" + SECRET])
    assert res.exit_code == 0 and SECRET not in res.stdout + res.stderr


def test_a_refused_request_is_cheap_and_still_refused(tmp_path):
    """A 401 costs ~44 ms on keep-alive when the listening socket is not marked TCP: asyncio
    then leaves Nagle on and the body waits for the client's delayed ACK. The socket says TCP
    and has TCP_NODELAY; a wrong token gets 401 and the right one 200 on one connection."""
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    w = open_store(url)
    add_ladder_run(w, 5)
    w.close()
    srv = ThreadServer(url, token="right-token-123")
    try:
        sock = srv.prep.sock
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        c = http.client.HTTPConnection("127.0.0.1", srv.prep.port, timeout=10)
        for token, status in [("wrong-token-12", 401), ("right-token-123", 200), ("", 401), ("right-token-123", 200)]:
            c.request("GET", "/api/health", headers={"Authorization": f"Bearer {token}"})
            resp = c.getresponse()
            body = resp.read()
            assert resp.status == status, body
            assert b"right-token" not in body
        c.close()
    finally:
        srv.close()
