"""Client-side rate limits: token buckets for requests, input tokens and output tokens per minute.

Each bucket refills continuously at ``per_minute / 60`` per second up to ``burst_s`` seconds' worth
(at least one request's worth), like the API's own limiter; it starts empty, so no window of a run
goes above the configured rate. Output tokens are reserved at ``max_tokens`` and the unused part is
given back when the reply's usage is known (input tokens likewise, from the estimate). A request larger than the bucket waits
for a full bucket and then drives it negative (a debt repaid by the refill), so oversized requests
still pass, at the configured average rate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class TokenBucket:
    per_minute: float
    burst_s: float = 1.0
    level: float = 0.0
    stamp: float = 0.0

    def __post_init__(self) -> None:
        self.rate = self.per_minute / 60.0  # units per second
        self.capacity = max(self.rate * self.burst_s, 1.0)
        self.level = 0.0  # starts empty: no burst above the configured rate at start-up
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` (capped at the capacity) is available."""
        self._refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Requests, input tokens and output tokens per minute; ``None`` disables a limit."""

    def __init__(self, requests_per_minute: float | None = None, input_tokens_per_minute: float | None = None,
                 output_tokens_per_minute: float | None = None, burst_s: float = 1.0):
        self.rpm = TokenBucket(requests_per_minute, burst_s) if requests_per_minute else None
        self.itpm = TokenBucket(input_tokens_per_minute, burst_s) if input_tokens_per_minute else None
        self.otpm = TokenBucket(output_tokens_per_minute, burst_s) if output_tokens_per_minute else None
        self._lock = asyncio.Lock()  # FIFO: requests pass in the order they asked
        self.blocked_until = 0.0  # monotonic time before which nothing starts (a server's retry-after)
        self._settled = asyncio.Event()  # tokens came back: a waiter re-checks at once instead of oversleeping

    def block_for(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (a 429's retry-after applies to the whole client)."""
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)

    async def acquire(self, input_tokens: int, output_tokens: int) -> None:
        """Wait until one request of ``input_tokens`` in and up to ``output_tokens`` out may start."""
        wants = [(self.rpm, 1.0), (self.itpm, float(input_tokens)), (self.otpm, float(output_tokens))]
        wants = [(b, a) for b, a in wants if b is not None]
        async with self._lock:
            while True:
                now = time.monotonic()
                delay = max([self.blocked_until - now, *(b.wait_time(a, now) for b, a in wants)])
                if delay <= 0:
                    break
                self._settled.clear()
                try:
                    await asyncio.wait_for(self._settled.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
            for b, a in wants:
                b.take(a)

    def settle(self, *, input_reserved: int, input_used: int, output_reserved: int, output_used: int) -> None:
        """Correct the reservations once the real usage is known (unused output tokens come back)."""
        if self.itpm is not None:
            self.itpm.give_back(input_reserved - input_used) if input_used <= input_reserved else \
                self.itpm.take(input_used - input_reserved)
        if self.otpm is not None and output_used < output_reserved:
            self.otpm.give_back(output_reserved - output_used)
        self._settled.set()

    def allowed_rate(self, input_tokens: float, output_tokens: float) -> float:
        """Requests per second these limits allow for requests of the given size (inf when unlimited)."""
        rates = [b.rate / a for b, a in ((self.rpm, 1.0), (self.itpm, input_tokens), (self.otpm, output_tokens))
                 if b is not None and a > 0]
        return min(rates, default=float("inf"))
