"""Running an aiohttp app on 127.0.0.1 in a background thread, and the fault plan both fakes share."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Faults:
    """Per-request fault probabilities (drawn from a seeded RNG), tried in this order."""

    rate_limit: float = 0.0  # 429 with retry-after
    overloaded: float = 0.0  # 529 (Anthropic) / 503 (OpenAI)
    server_error: float = 0.0  # 500
    drop: float = 0.0  # the connection is closed without a response
    malformed: float = 0.0  # 200 with a body that is not JSON
    stream_error: float = 0.0  # SSE: an `error` event after the stream began
    stream_cut: float = 0.0  # SSE: the connection drops in the middle of the stream
    retry_after_s: float = 0.05
    seed: int = 0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self) -> str | None:
        x = self.rng.random()
        for name in ("rate_limit", "overloaded", "server_error", "drop", "malformed", "stream_error", "stream_cut"):
            p = getattr(self, name)
            if x < p:
                return name
            x -= p
        return None


class ThreadedServer:
    """Serve ``app`` on 127.0.0.1:<free port> from a daemon thread; ``stop()`` shuts it down."""

    def __init__(self, app: web.Application, port: int = 0):
        self.app, self._port = app, port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=1024)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def start(self) -> ThreadedServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket without answering (what a dropped connection looks like to the client)."""
    request.transport.close()
    raise asyncio.CancelledError
