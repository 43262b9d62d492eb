"""Retry policy: exponential backoff with full jitter, never shorter than the server's ``retry-after``."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    base_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random | None = None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        rng = self.rng or random
        ceiling = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        wait = rng.uniform(ceiling / 2, ceiling)  # jitter spreads the retries of concurrent requests
        if retry_after is not None:
            wait = max(wait, retry_after + rng.uniform(0, 0.1 * max(retry_after, 0.01)))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (seconds form; HTTP dates are rare on these APIs)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        import time
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
