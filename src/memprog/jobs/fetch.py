"""Weights by URL: fetched once, pinned by hash, cached, refused before the bench is touched.

Why this module: the card's third user trains in the cloud and programs at the edge, so
``memprog program`` takes ``https://…/net.pt`` as well as a local path. Downloading is
pooch's job (streaming through ``requests``, a temporary file moved into place only when
complete, retries of transient failures, proxies from the environment); this module adds
what a lab needs around it:

- **a pin**: ``sha256`` given → a file whose content differs is refused (``ConfigError``,
  exit 2) before anything is loaded, let alone pulsed; no pin → accepted with a warning and
  its computed hash recorded, so the run still says exactly what was programmed;
- **a cache keyed by content**: ``<cache>/weights/<sha256><suffix>``; a second job with
  the same pin reads the cached file and does not download again;
- **a size cap** checked before (``Content-Length``) and during the download, so a
  server cannot fill the disk or memory;
- **one line for every failure**, naming the URL with its credentials masked: a 404, a
  refused connection, a timeout or a truncated body is a :class:`~memprog.core.errors.FetchError`
  (exit 3: the input may be right and the network wrong).

``file://`` URLs and plain paths are read in place (hashed, pinned, never copied); other
schemes go through fsspec when it has a filesystem for them (``s3://`` with s3fs
installed), with the same pin, cap and cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import platformdirs
import pooch
import requests

from memprog.core.errors import ConfigError, FetchError
from memprog.store.urls import mask_url

# [choice] 256 MiB: a 1024x1024 float32 layer is 4 MiB; the largest network a fleet of
# 256x256 arrays holds is far below this. A bench-derived cap can only lower it.
DEFAULT_MAX_BYTES = 256 * 2**20
# [choice] connect/read timeout: a lab network answers in well under a second; 30 s covers a
# slow object store without letting a dead server hang a job for minutes
DEFAULT_TIMEOUT_S = 30.0
# [choice] two retries of transient failures (pooch waits 1 s, then 2 s between tries)
DEFAULT_RETRIES = 2
HTTP_SCHEMES = ("http", "https")
# other schemes go through fsspec, and only those naming remote storage (fsspec also knows
# "reference", "dir", "memory", ... which are not places weights come from)
FSSPEC_SCHEMES = ("ftp", "sftp", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "hf")
# [choice] a whole download may take at most 10 minutes, retries included: a slow link
# moves 256 MiB in that time at 0.5 MB/s; a server trickling bytes forever does not hang a job
DEFAULT_DEADLINE_S = 600.0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FetchedWeights:
    """Where the weights are now, and what the run store records about them.

    Attributes:
        path: a local file to load (the cache entry, or the file itself for local paths).
        source: the URL or path as given, credentials masked (safe to print and store).
        sha256: the content's hash (hex).
        size_bytes: the file's size.
        pinned: whether the caller gave the hash (False: the hash was computed and recorded).
        downloaded: False when the cache already held the pinned file (or it is local).
    """

    path: Path
    source: str
    sha256: str
    size_bytes: int
    pinned: bool
    downloaded: bool

    @property
    def format(self) -> str:
        """The file's format, from its suffix (what the loader goes by)."""
        return self.path.suffix.lower().lstrip(".")

    def provenance(self) -> dict[str, Any]:
        """What a program run stores about its weights (no credentials)."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["format"] = self.format
        return d


def is_url(text: str | os.PathLike[str]) -> bool:
    """True for ``scheme://…`` text (a Windows drive letter ``C:\\`` is a path)."""
    s = str(text)
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", s)
    return bool(m) and len(m.group(1)) > 1


def check_sha256(pin: str | None) -> str | None:
    """The pin as 64 lowercase hex digits, or None; anything else is refused."""
    if pin is None:
        return None
    value = pin.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    if not _HEX64.match(value):
        raise ConfigError("--sha256", pin, "64 hexadecimal digits (the file's SHA-256)")
    return value


def cache_dir() -> Path:
    """The download cache: ``$MEMPROG_CACHE_DIR`` or the user cache folder (platformdirs)."""
    env = os.environ.get("MEMPROG_CACHE_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("memprog"))


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def url_suffix(url: str) -> str:
    """The file suffix of a URL's path (``.pt``), which tells the loader the format."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,12}", suffix) else ""


def _printable(text: str) -> str:
    """``text`` with control characters escaped: a URL is echoed on one line, never two."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def fetch_weights(
    source: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    progress: bool = False,
    what: str = "weights",
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> FetchedWeights:
    """A local file holding ``source`` (a path or a URL), checked against its pin.

    Args:
        source: a local path, ``file://``, ``http(s)://`` or another fsspec URL.
        sha256: the expected SHA-256 (hex); a mismatch raises ConfigError before loading.
        max_bytes: refuse larger files (checked before and during a download).
        timeout_s: connect and read timeout of each HTTP request.
        retries: extra tries after a transient failure (connection, 5xx, truncation).
        progress: show a download progress bar (stderr).
        what: the parameter named in errors (``weights``, ``test set``).

    Raises:
        ConfigError: bad pin, hash mismatch, file too large, unsupported scheme (exit 2).
        FetchError: the server or the network failed (exit 3).
    """
    pin = check_sha256(sha256)
    if not 0 < max_bytes:
        raise ConfigError("max_bytes", max_bytes, "> 0")
    text = os.fspath(source)
    if not is_url(text) or text.lower().startswith("file://"):
        return _local(text, pin, max_bytes, what)
    masked = _printable(mask_url(text))
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ConfigError(what, masked, "a well-formed URL", str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in HTTP_SCHEMES + FSSPEC_SCHEMES:
        raise ConfigError(
            what, masked, f"a path, file://, http(s):// or one of {', '.join(FSSPEC_SCHEMES)}:// (fsspec)"
        )
    if scheme in HTTP_SCHEMES and not parts.hostname:
        raise ConfigError(what, masked, "a URL naming a host (http://HOST/PATH)")
    suffix = url_suffix(text)
    root = cache_dir() / "weights"
    if pin is not None:
        cached = root / f"{pin}{suffix}"
        if cached.is_file() and file_sha256(cached) == pin:
            return FetchedWeights(cached, masked, pin, cached.stat().st_size, True, False)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".partial-") as tmp:
        part = Path(tmp) / f"download{suffix}"
        if scheme in HTTP_SCHEMES:
            _download_http(text, masked, part, max_bytes, timeout_s, retries, progress, what, deadline_s)
        else:
            _download_fsspec(text, masked, part, max_bytes, what)
        digest = file_sha256(part)
        _check_pin(digest, pin, masked, what)
        final = root / f"{digest}{suffix}"
        size = part.stat().st_size
        os.replace(part, final)  # same folder: atomic; a crash never leaves half a cache entry
    if pin is None:
        warnings.warn(
            f"{what} from {masked}: not pinned (no --sha256); its sha256 is {digest}, recorded "
            "with the run; pass it as the pin so the next job uses the same file",
            stacklevel=2,
        )
    return FetchedWeights(final, masked, digest, size, pin is not None, True)


def _check_pin(digest: str, pin: str | None, masked: str, what: str) -> None:
    if pin is not None and digest != pin:
        raise ConfigError(
            "--sha256", pin, f"the SHA-256 of the {what} you mean to program",
            f"{masked} holds a different file (its SHA-256 is {digest}); nothing was programmed. "
            "Check where the file came from before changing the pin",
        )


def _local(text: str, pin: str | None, max_bytes: int, what: str) -> FetchedWeights:
    if text.lower().startswith("file://"):
        try:
            parts = urlsplit(text)
        except ValueError as exc:
            raise ConfigError(what, _printable(mask_url(text)), "a well-formed file:// URL", str(exc)) from None
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(what, _printable(mask_url(text)), "a file:// URL on this machine (file:///path)")
        path = Path(unquote(parts.path))
        if os.name == "nt" and re.match(r"^/[A-Za-z]:", str(parts.path)):
            path = Path(unquote(parts.path)[1:])
    else:
        path = Path(text)
    try:
        if not path.is_file():
            raise ConfigError(what, str(path), "an existing file")
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(what, str(path), f"a file of at most {max_bytes} bytes", f"it has {size}")
        # hashed with the cap too: a file whose size says 0 may still stream forever (/proc)
        digest, size = _capped_sha256(path, max_bytes, what)
    except OSError as exc:
        raise ConfigError(what, str(path), "a readable file", f"{type(exc).__name__}: {exc.strerror or exc}") from None
    _check_pin(digest, pin, str(path), what)
    return FetchedWeights(path, mask_url(text), digest, size, pin is not None, False)


def _capped_sha256(path: Path, max_bytes: int, what: str) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += len(block)
            if n > max_bytes:
                raise ConfigError(what, str(path), f"a file of at most {max_bytes} bytes", "it reads longer")
            h.update(block)
    return h.hexdigest(), n


class _CappedFile:
    """A file object that refuses to grow past ``max_bytes`` (pooch writes through it)."""

    def __init__(self, path: Path, max_bytes: int, masked: str, deadline: float) -> None:
        self._f = open(path, "w+b")  # noqa: SIM115 - closed in close()
        self._max = max_bytes
        self._n = 0
        self._masked = masked
        self._deadline = deadline

    def write(self, chunk: bytes) -> int:
        self._n += len(chunk)
        if self._n > self._max:
            raise _TooLarge(self._n)
        if time.monotonic() > self._deadline:
            raise _NotRetried("no complete answer within the download deadline")
        return self._f.write(chunk)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class _TooLarge(Exception):
    """Raised inside the download when the body passes the cap (neither retried nor kept)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _BadUrl(Exception):
    """The URL itself is wrong (not the network): refused as input, exit 2."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotRetried(Exception):
    """A failure pooch must not retry (a 4xx answer): carried out of its retry loop."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _download_http(
    url: str, masked: str, part: Path, max_bytes: int, timeout_s: float, retries: int, progress: bool,
    what: str = "weights", deadline_s: float = DEFAULT_DEADLINE_S,
) -> None:
    deadline = time.monotonic() + deadline_s

    def downloader(u: str, output_file: str, pup: Any) -> None:
        if time.monotonic() > deadline:
            raise _NotRetried("no complete answer within the download deadline")
        try:
            head = requests.head(u, timeout=timeout_s, allow_redirects=True)
            length = int(head.headers.get("content-length") or 0) if head.ok else 0
        except (requests.RequestException, ValueError):
            length = 0  # no HEAD, or a Content-Length that is not a number: the cap still holds
        if length > max_bytes:
            raise _TooLarge(length)
        sink = _CappedFile(Path(output_file), max_bytes, masked, deadline)
        try:
            pooch.HTTPDownloader(timeout=timeout_s, progressbar=progress)(u, sink, pup)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if 400 <= status < 500:
                raise _NotRetried(f"HTTP {status} {exc.response.reason or ''}".strip()) from None
            raise
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema, requests.exceptions.TooManyRedirects) as exc:
            raise _BadUrl(type(exc).__name__) from None
        finally:
            sink.close()

    # pooch logs every download at INFO with the full URL, credentials included: quiet it
    pooch.get_logger().setLevel("WARNING")
    store = pooch.create(
        path=part.parent, base_url="", registry={part.name: None}, urls={part.name: url},
        retry_if_failed=max(0, int(retries)),
    )
    try:
        store.fetch(part.name, downloader=downloader)
    except _TooLarge as exc:
        raise ConfigError(what, masked, f"a file of at most {max_bytes} bytes", f"the server sends {exc.size}") from None
    except _BadUrl as exc:
        raise ConfigError(what, masked, "a URL the server can answer (http(s)://HOST[:PORT]/PATH)", exc.reason) from None
    except _NotRetried as exc:
        raise FetchError(masked, exc.reason) from None
    except requests.RequestException as exc:
        raise FetchError(masked, _reason(exc, url)) from None
    except OSError as exc:
        raise FetchError(masked, f"{type(exc).__name__}: {exc}") from None


def _reason(exc: Exception, url: str) -> str:
    """A one-line cause with no credential in it (requests quotes the URL back)."""
    kinds = (
        (requests.ConnectTimeout, "connection timed out"),
        (requests.ReadTimeout, "no answer within the timeout"),
        (requests.ConnectionError, "connection refused or lost"),
        (requests.HTTPError, "server error"),
    )
    label = next((text for kind, text in kinds if isinstance(exc, kind)), type(exc).__name__)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in str(exc):
        label = "the body ended before its announced length (truncated)"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        label = f"HTTP {exc.response.status_code} {exc.response.reason or ''}".strip()
    return label


def _download_fsspec(url: str, masked: str, part: Path, max_bytes: int, what: str = "weights") -> None:
    try:
        import fsspec  # deferred: optional, only for schemes beyond http and file
    except ImportError:
        raise ConfigError(what, masked, "an http(s):// or file:// URL or a path (pip install fsspec for more)") from None
    try:
        with fsspec.open(url, "rb") as src, open(part, "wb") as dst:
            n = 0
            while block := src.read(1 << 20):
                n += len(block)
                if n > max_bytes:
                    raise ConfigError(what, masked, f"a file of at most {max_bytes} bytes")
                dst.write(block)
    except ConfigError:
        raise
    except ImportError as exc:  # the scheme's filesystem package is not installed (s3fs, ...)
        raise ConfigError(what, masked, "a scheme whose fsspec filesystem is installed", str(exc).split("\n")[0]) from None
    except OSError as exc:
        raise FetchError(masked, f"{type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 - an fsspec backend's own error: one line, never a traceback
        raise FetchError(masked, type(exc).__name__) from None


def clear_cache() -> int:
    """Delete the download cache; returns the number of files removed."""
    root = cache_dir() / "weights"
    n = sum(1 for p in root.glob("*") if p.is_file()) if root.is_dir() else 0
    shutil.rmtree(root, ignore_errors=True)
    return n


__all__ = [
    "DEFAULT_MAX_BYTES",
    "FetchedWeights",
    "cache_dir",
    "check_sha256",
    "clear_cache",
    "fetch_weights",
    "file_sha256",
    "is_url",
]
