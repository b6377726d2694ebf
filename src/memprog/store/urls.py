"""Database URLs without their secrets: one masking function for everything that is printed.

Why one module: a store URL reaches stdout (``db summary``), stderr (every run's "stored in
db ..." line), exceptions (``StoreError``, ``ConfigError``) and the dashboard's JSON. A
password may sit in the URL's netloc (``user:pw@host``) or in its query
(``?user=u&password=pw``, ``?sslpassword=``, ``?token=``...), and a driver's own error
message may quote it back. :func:`mask_url` hides both URL places; :func:`scrub` removes
every secret value of a URL from any text (driver messages) before it is shown.

A password with an unescaped ``@`` or ``/`` makes the URL ambiguous: SQLAlchemy would take
part of the password for the host (and then print it in "cannot resolve host"). Such a URL is
refused by :func:`check_url` with one line (credentials masked) telling the user to
percent-encode the password.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote

from memprog.core.errors import ConfigError

MASK = "***"
# query parameters whose value is a credential; matched as substrings, case-insensitive
# (password, sslpassword, passwd, pwd, token, access_token, secret, client_secret, key,
# sslkey's passphrase, api_key, auth, credential(s))
_SECRET_PARAM = re.compile(r"pass|pwd|token|secret|key|auth|credential|signature|sig$|jwt|session", re.IGNORECASE)
# schemes whose lone userinfo (``https://TOKEN@host``) is a credential, not a user name
# (a database URL's ``postgresql://user@host`` names a role and is left readable)
_TOKEN_USER_SCHEMES = ("http://", "https://", "ftp://", "sftp://", "s3://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "hf://")


def _is_secret_param(name: str) -> bool:
    return bool(_SECRET_PARAM.search(name))


def _split(url: str) -> tuple[str, str, str, str]:
    """(scheme://, userinfo, rest-of-authority-and-path, query) on the raw text.

    The userinfo ends at the LAST ``@`` before the query (a password may hold ``@``); SQLite
    URLs (``sqlite:///path``) have no authority, so a file path with ``@`` is left alone.
    """
    at = url.find("://")
    if at < 0:
        return "", "", url, ""
    head, tail = url[: at + 3], url[at + 3 :]
    body, _, query = tail.partition("?")
    if tail.startswith("/") or "@" not in body:  # sqlite:///... or no credentials
        return head, "", body, query
    userinfo, _, rest = body.rpartition("@")
    return head, userinfo, rest, query


def _mask_query(query: str) -> str:
    if not query:
        return ""
    out = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        out.append(f"{name}={MASK}" if eq and _is_secret_param(unquote(name)) else part)
    return "&".join(out)


def mask_url(url: object) -> str:
    """``url`` with every credential replaced by ``***``: the netloc password and the values
    of query parameters named like a secret (password, token, secret, key, ...).

    Works on the raw text, so a URL SQLAlchemy cannot parse (or would misparse) still never
    shows its password.
    """
    text = str(url)
    text, hash_, _fragment = text.partition("#")  # a fragment may carry a token (#access_token=)
    head, userinfo, rest, query = _split(text)
    if userinfo:
        user, colon, _pw = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{MASK}@"
        elif head.lower() in _TOKEN_USER_SCHEMES:
            userinfo = f"{MASK}@"
        else:
            userinfo = f"{user}@"
    q = _mask_query(query)
    return head + userinfo + rest + (f"?{q}" if q or text.endswith("?") else "") + (f"#{MASK}" if hash_ else "")


def url_secrets(url: object) -> list[str]:
    """Every secret value in ``url`` (raw and percent-decoded forms), longest first."""
    text = str(url)
    _head, userinfo, _rest, query = _split(text)
    found: set[str] = set()
    if userinfo and ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _is_secret_param(name) and value:
            found.add(value)
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and value and _is_secret_param(unquote(name)):
            found.add(value)
    more = {unquote(s) for s in found} | {quote(s, safe="") for s in found}
    return sorted((s for s in found | more if s), key=len, reverse=True)


def scrub(text: object, url: object) -> str:
    """``text`` with every secret of ``url`` replaced by ``***`` (a driver's error message may
    quote the connection string back)."""
    out = str(text)
    for s in url_secrets(url):
        out = out.replace(s, MASK)
    return out


def check_url(url: str, parameter: str = "db") -> None:
    """Refuse an ambiguous URL before any driver sees it (one line, credentials masked).

    Raises:
        ConfigError: a netloc password holding an unescaped ``@`` or ``/`` (SQLAlchemy would
            split it and take part of it for the host).
    """
    head, userinfo, _rest, _query = _split(url)
    if not head or not userinfo:
        return
    bad = [c for c in ("@", "/") if c in userinfo]
    if bad:
        chars = " and ".join(repr(c) for c in bad)
        raise ConfigError(
            parameter,
            mask_url(url),
            "user:password@host/database with special characters percent-encoded (@ -> %40, / -> %2F)",
            f"the user or password holds an unescaped {chars}",
        )


__all__ = ["MASK", "check_url", "mask_url", "scrub", "url_secrets"]
