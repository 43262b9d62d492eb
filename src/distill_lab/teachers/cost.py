"""Cost from usage and the price table; the spend cap as reservations of each request's worst case."""

from __future__ import annotations

import asyncio

from distill_lab.teachers.config import PriceConfig

MILLION = 1_000_000


def usage_cost(usage: dict[str, int], prices: PriceConfig, *, batch: bool = False) -> float:
    """USD for one request's ``usage`` (input, output, cache write, cache read tokens)."""
    usd = (usage.get("input_tokens", 0) * prices.input + usage.get("output_tokens", 0) * prices.output
           + usage.get("cache_creation_input_tokens", 0) * prices.cache_write
           + usage.get("cache_read_input_tokens", 0) * prices.cache_read) / MILLION
    return usd * (prices.batch_discount if batch else 1.0)


def max_request_cost(input_tokens: int, max_tokens: int, prices: PriceConfig, *, batch: bool = False) -> float:
    """The most one request can cost: its input all written to cache at the dearer rate, max_tokens out."""
    in_price = max(prices.input, prices.cache_write)
    usd = (input_tokens * in_price + max_tokens * prices.output) / MILLION
    return usd * (prices.batch_discount if batch else 1.0)


class SpendCap:
    """Admit a request only if spent + in-flight worst cases + its worst case stays within the cap.

    Never crosses ``cap`` as long as the worst-case estimate holds (the input estimate has a margin);
    when a request does not fit but others are in flight, it waits for them to settle first.
    """

    def __init__(self, cap: float | None, spent: float = 0.0):
        self.cap, self.spent, self.reserved = cap, spent, 0.0
        self.in_flight = 0
        self._cond = asyncio.Condition()

    async def reserve(self, worst: float) -> bool:
        """True when the request may go (``worst`` is now reserved); False when the cap is reached."""
        if self.cap is None:
            self.in_flight += 1
            return True
        async with self._cond:
            while self.spent + self.reserved + worst > self.cap:
                if self.in_flight == 0:
                    return False
                await self._cond.wait()
            self.reserved += worst
            self.in_flight += 1
            return True

    async def settle(self, worst: float, actual: float) -> None:
        """The request ended: replace its reservation by what it cost (0 for a failed request)."""
        self.spent += actual
        self.in_flight -= 1
        if self.cap is None:
            return
        async with self._cond:
            self.reserved -= worst
            self._cond.notify_all()


def projected_cost(model: str, input_tokens: int, output_tokens: int, cache_write_tokens: int = 0,
                   cache_read_tokens: int = 0) -> float:
    """USD the tokens would cost at ``model``'s list prices (``anthropic_models.LIST_PRICES``); a
    ``ValueError`` naming the known models when ``model`` is not listed."""
    from distill_lab.teachers.anthropic_models import LIST_PRICES, list_prices

    p = list_prices(model)
    if p is None:
        raise ValueError(f"no list prices for {model!r}; known: {', '.join(sorted(LIST_PRICES))}")
    prices = PriceConfig(input=p[0], output=p[1], cache_write=p[2], cache_read=p[3])
    return usage_cost({"input_tokens": input_tokens, "output_tokens": output_tokens,
                       "cache_creation_input_tokens": cache_write_tokens,
                       "cache_read_input_tokens": cache_read_tokens}, prices)
