"""What a transport-level failure was (no HTTP status): nothing listening, a timeout, a lost connection.

The SDKs wrap the HTTP library's exceptions (``httpx`` or ``httpx2``) in their own ``APIConnectionError``;
the original is on ``__cause__``. Classes are matched by name along the chain and each class's MRO, so the
same rule serves both SDKs and both HTTP libraries.
"""

from __future__ import annotations

import re

_CONNECT = {"ConnectError", "ConnectTimeout", "ConnectionRefusedError", "gaierror"}
_TIMEOUT = {"TimeoutException", "ReadTimeout", "WriteTimeout", "PoolTimeout", "APITimeoutError", "TimeoutError"}


def _chain(e: BaseException):
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def connection_cause(e: BaseException) -> str:
    """``connect`` (nothing answered: refused, unknown host, connect timeout), ``timeout`` (no reply in
    ``teacher.timeout_s``) or ``dropped`` (the connection was lost after it was made)."""
    names = [{k.__name__ for k in type(x).__mro__} for x in _chain(e)]
    if any(n & _CONNECT for n in names):
        return "connect"
    if any(n & _TIMEOUT for n in names):
        return "timeout"
    return "dropped"


_TAG = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def short_text(text: str, limit: int = 300) -> str:
    """An error text fit for one log line: an HTML error page becomes its title (or its text without tags),
    whitespace is collapsed, and the rest is cut at ``limit`` characters with the size said."""
    s = str(text)
    if "<html" in s.lower() or "<!doctype" in s.lower():
        m = _TITLE.search(s)
        inner = m.group(1) if m else _TAG.sub(" ", s)
        s = f"HTML page ({len(text)} chars): {inner}"
    s = " ".join(s.split())
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"
