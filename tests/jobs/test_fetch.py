"""Weights by URL (issue 28): a real HTTP server on loopback, the pin, the cache, the cap,
and every failure in one line with the URL's credentials masked."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest

from memprog.core.errors import ConfigError, FetchError
from memprog.jobs.fetch import check_sha256, fetch_weights, is_url
from tests.http_fixture import start_server

BODY = b"memprog test weights " * 100
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPROG_CACHE_DIR", str(tmp_path / "cache"))
    srv = start_server()
    srv.files["/net.pt"] = BODY
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
def test_pinned_download_then_cache_hit(server):
    first = fetch_weights(f"{server.url}/net.pt", SHA)
    assert first.downloaded and first.pinned and first.sha256 == SHA
    assert first.path.read_bytes() == BODY and first.path.suffix == ".pt"
    assert first.size_bytes == len(BODY) and first.format == "pt"
    gets = server.gets["/net.pt"]
    second = fetch_weights(f"{server.url}/net.pt", SHA)
    assert not second.downloaded and second.path == first.path
    assert server.gets["/net.pt"] == gets  # the cache answered: no second download


@pytest.mark.slow
def test_wrong_pin_refused_and_not_cached(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ConfigError) as exc:
        fetch_weights(f"{server.url}/net.pt", wrong)
    assert SHA in str(exc.value) and wrong in str(exc.value)
    assert not list((tmp_path / "cache" / "weights").glob(f"{wrong}*"))


@pytest.mark.slow
def test_unpinned_download_warns_and_records_hash(server):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = fetch_weights(f"{server.url}/net.pt")
    assert got.sha256 == SHA and not got.pinned
    assert any("not pinned" in str(w.message) and SHA in str(w.message) for w in caught)


@pytest.mark.slow
def test_404_names_the_url_without_credentials(server):
    url = f"http://alice:s3cr3t-pw@127.0.0.1:{server.server_address[1]}/missing.pt?token=tok-123"
    with pytest.raises(FetchError) as exc:
        fetch_weights(url, retries=0)
    text = str(exc.value)
    assert "404" in text and "/missing.pt" in text
    assert "s3cr3t-pw" not in text and "tok-123" not in text
    assert server.gets["/missing.pt"] == 1  # a 404 is not retried


@pytest.mark.parametrize(
    "url",
    ["http://ghp_TOKEN123@127.0.0.1:{port}/missing.pt", "http://127.0.0.1:{port}/missing.pt?jwt=ghp_TOKEN123",
     "http://127.0.0.1:{port}/missing.pt#access_token=ghp_TOKEN123"],
)
@pytest.mark.slow
def test_token_only_credentials_are_masked_too(server, url):
    with pytest.raises(FetchError) as exc:
        fetch_weights(url.format(port=server.server_address[1]), retries=0)
    assert "ghp_TOKEN123" not in str(exc.value) and "***" in str(exc.value)


@pytest.mark.parametrize(
    "url", ["http://[::1/x.pt", "reference://x.pt", "dir://x.pt", "http:///x.pt", "http://127.0.0.1:99999/x.pt",
            "http://127.0.0.1:1/x.pt\nerror: second line"],
)
def test_malformed_or_unsupported_urls_are_input_errors(tmp_path, monkeypatch, url):
    monkeypatch.setenv("MEMPROG_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises((ConfigError, FetchError)) as exc:
        fetch_weights(url, retries=0, timeout_s=2)
    assert "\n" not in str(exc.value)  # one line, whatever the URL holds
    if "second line" not in url:
        assert isinstance(exc.value, ConfigError)


@pytest.mark.skipif(not Path("/proc/self/pagemap").exists(), reason="Linux /proc only")
def test_a_file_that_streams_past_its_size_is_capped(tmp_path):
    with pytest.raises(ConfigError, match="at most"):
        fetch_weights("/proc/self/pagemap", max_bytes=1 << 20)


@pytest.mark.slow
def test_truncated_body_is_a_fetch_error(server):
    with pytest.raises(FetchError) as exc:
        fetch_weights(f"{server.url}/truncated/net.pt", SHA, retries=0)
    assert "truncated" in str(exc.value) or "connection" in str(exc.value)


def test_refused_connection_is_a_fetch_error(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("MEMPROG_CACHE_DIR", str(tmp_path / "cache"))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(FetchError) as exc:
        fetch_weights(f"http://127.0.0.1:{port}/net.pt", retries=0, timeout_s=5)
    assert f"127.0.0.1:{port}/net.pt" in str(exc.value)


@pytest.mark.slow
def test_transient_failure_is_retried(server):
    got = fetch_weights(f"{server.url}/flaky/net.pt", SHA, retries=1)
    assert got.path.read_bytes() == BODY
    assert server.gets["/flaky/net.pt"] == 2


@pytest.mark.slow
def test_size_cap_before_and_during(server):
    with pytest.raises(ConfigError, match="at most 1000 bytes"):
        fetch_weights(f"{server.url}/net.pt", max_bytes=1000, retries=0)  # Content-Length
    with pytest.raises(ConfigError, match="at most"):
        fetch_weights(f"{server.url}/huge/net.pt", max_bytes=10_000, retries=0)


def test_local_paths_and_file_urls(tmp_path):
    f = tmp_path / "w.pt"
    f.write_bytes(BODY)
    for src in (str(f), f.as_uri()):
        got = fetch_weights(src, SHA)
        assert got.path == f and not got.downloaded and got.sha256 == SHA
    with pytest.raises(ConfigError):
        fetch_weights(str(f), "f" * 64)


@pytest.mark.parametrize("pin", ["abc", "g" * 64, "0" * 63, ""])
def test_bad_pins_refused(pin):
    with pytest.raises(ConfigError, match="--sha256"):
        check_sha256(pin)


def test_is_url():
    assert is_url("https://x/y.pt") and is_url("file:///tmp/a.pt")
    assert not is_url("w.pt") and not is_url(r"C:\weights\w.pt")
