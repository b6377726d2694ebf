"""Who may read the dashboard: local-only by default, a token on any other bind.

Why here and not in each route: the rule must hold for every response the app can give —
pages, JSON, assets, 404s — so it is one ASGI middleware wrapped around the whole app.

* ``local`` bind (127.0.0.1, ::1, localhost) without a token: open to the machine's own
  users, and requests whose ``Host`` header is not a local name are refused (400), so a web
  page elsewhere cannot reach the dashboard through DNS rebinding.
* any token configured (required on every non-local bind): a request must carry it as
  ``Authorization: Bearer T``, an ``X-Memprog-Token: T`` header, the ``memprog_token``
  cookie, or ``?token=T`` in the URL (which also sets the cookie, so a browser needs the
  token once). Anything else gets 401. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from memprog.core.errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")
COOKIE = "memprog_token"
TOKEN_ENV = "MEMPROG_DASHBOARD_TOKEN"
MIN_TOKEN_CHARS = 8
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        # plotly draws heat maps into data: URLs and styles elements inline; nothing external
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
        b"base-uri 'none'; form-action 'self'",
    ),
]


def is_local(host: str) -> bool:
    """True for the loopback binds that need no token."""
    return host in LOCAL_HOSTS


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-local bind without a token, and a token too short to be one."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError("--token", "*" * len(token), f"at least {MIN_TOKEN_CHARS} characters")
    if not is_local(host) and not token:
        raise ConfigError(
            "--host", host, "127.0.0.1, ::1 or localhost without a token",
            f"any other bind needs --token or ${TOKEN_ENV}",
        )  # fmt: skip


def _host_name(host_header: str) -> str:
    h = host_header.strip().lower()
    if h.startswith("["):  # [::1]:8050
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class Guard:
    """ASGI middleware enforcing the rules in the module docstring, adding safe headers."""

    def __init__(self, app: Any, *, token: str | None, local: bool) -> None:
        self.app = app
        self.token = token or None
        self.local = local

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.local and not self.token:
            if _host_name(headers.get("host", "")) not in LOCAL_HOSTS:
                await _plain(send, 400, "Host not allowed: this dashboard answers local names only")
                return
        set_cookie = False
        if self.token:
            given = _token_of(scope, headers)
            if given is None or not hmac.compare_digest(given[0].encode(), self.token.encode()):
                await _plain(send, 401, "401 Unauthorized: this dashboard needs its token "
                             "(?token=..., or the Authorization: Bearer header)")  # fmt: skip
                return
            set_cookie = given[1] == "query"

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                hs = list(message.get("headers", [])) + SECURITY_HEADERS
                if set_cookie:
                    hs.append((b"set-cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; "
                               "SameSite=Strict".encode()))  # fmt: skip
                message = dict(message, headers=hs)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _token_of(scope: dict, headers: dict[str, str]) -> tuple[str, str] | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), "header"
    if "x-memprog-token" in headers:
        return headers["x-memprog-token"].strip(), "header"
    q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if q.get("token"):
        return q["token"][0], "query"
    if "cookie" in headers:
        c = SimpleCookie()
        try:
            c.load(headers["cookie"])
        except Exception:  # a malformed cookie header is simply no token
            return None
        if COOKIE in c:
            return c[COOKIE].value, "cookie"
    return None


async def _plain(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    hs = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        hs.append((b"www-authenticate", b'Bearer realm="memprog dashboard"'))
    await send({"type": "http.response.start", "status": status, "headers": hs + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


__all__ = ["COOKIE", "Guard", "LOCAL_HOSTS", "TOKEN_ENV", "check_bind", "is_local"]
