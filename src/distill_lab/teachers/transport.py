"""What a transport-level failure was (no HTTP status): nothing listening, a timeout, a lost connection.

The SDKs wrap the HTTP library's exceptions (``httpx`` or ``httpx2``) in their own ``APIConnectionError``;
the original is on ``__cause__``. Classes are matched by name along the chain and each class's MRO, so the
same rule serves both SDKs and both HTTP libraries.
"""

from __future__ import annotations

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
