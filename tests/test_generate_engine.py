"""Engine parts without a server: token buckets, backoff, the spend cap, filters, config checks."""

from __future__ import annotations

import asyncio
import random

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.generate.config import GenerateConfig
from distill_lab.stages.generate.filters import apply_filters
from distill_lab.stages.generate.ratelimit import RateLimiter, TokenBucket
from distill_lab.teachers.config import PriceConfig, TeacherConfig
from distill_lab.teachers.cost import SpendCap, max_request_cost, usage_cost
from distill_lab.teachers.retry import Backoff, parse_retry_after


def test_bucket_rate_and_oversized_requests():
    b = TokenBucket(per_minute=600)  # 10/s, capacity 10 (1 s), starts empty
    t0 = b.stamp
    assert b.wait_time(1, t0) == pytest.approx(0.1)
    assert b.wait_time(5, t0 + 0.5) == pytest.approx(0.0)
    b.take(5)
    # a request of 30 (> capacity) waits for a full bucket, then leaves a debt of 20
    assert b.wait_time(30, t0 + 0.5) == pytest.approx(1.0)
    assert b.wait_time(30, t0 + 1.5) == 0
    b.take(30)
    assert b.level == pytest.approx(-20)
    assert b.wait_time(1, t0 + 1.5) == pytest.approx(2.1)  # the debt is repaid at the configured rate


def test_limiter_paces_requests():
    lim = RateLimiter(requests_per_minute=1200)  # 20/s

    async def go():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(10):
            await lim.acquire(10, 100)
        return loop.time() - t0

    assert 0.45 <= asyncio.run(go()) <= 0.9  # 10 requests at 20/s from an empty bucket: 0.5 s
    assert lim.allowed_rate(10, 100) == pytest.approx(20)
    assert RateLimiter(None, 6000, 60000).allowed_rate(50, 1000) == pytest.approx(1.0)  # 100 in/s / 50 vs 1000/1000


def test_output_reservation_is_given_back():
    lim = RateLimiter(output_tokens_per_minute=60_000)  # 1000/s, capacity 1000
    lim.otpm.level = 1000
    asyncio.run(lim.acquire(0, 1000))
    assert lim.otpm.level == pytest.approx(0, abs=5)
    lim.settle(input_reserved=0, input_used=0, output_reserved=1000, output_used=200)
    assert lim.otpm.level == pytest.approx(800, abs=5)


def test_backoff_honours_retry_after_and_grows():
    bo = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(0))
    assert all(bo.delay(1, retry_after=3.0) >= 3.0 for _ in range(50))
    firsts = [bo.delay(1) for _ in range(50)]
    fourths = [bo.delay(4) for _ in range(50)]
    assert all(0.5 <= d <= 1.0 for d in firsts) and all(4.0 <= d <= 8.0 for d in fourths)
    assert all(bo.delay(20) <= 8.0 for _ in range(20))
    assert len({round(d, 6) for d in firsts}) > 40  # jittered
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_spend_cap_never_crosses():
    async def go():
        cap = SpendCap(1.0)
        assert await cap.reserve(0.4) and await cap.reserve(0.4)
        third = asyncio.create_task(cap.reserve(0.4))
        await asyncio.sleep(0.01)
        assert not third.done()  # 0.8 reserved + 0.4 > 1.0: it waits for an in-flight request
        await cap.settle(0.4, 0.1)
        assert await third  # 0.1 spent + 0.4 + 0.4 <= 1.0
        await cap.settle(0.4, 0.4)
        await cap.settle(0.4, 0.4)
        assert cap.spent == pytest.approx(0.9)
        assert not await cap.reserve(0.4)  # nothing in flight and it does not fit: stop
        return cap

    assert asyncio.run(go()).spent <= 1.0


def test_costs():
    p = PriceConfig(input=5, output=25, cache_write=6.25, cache_read=0.5, batch_discount=0.5)
    u = {"input_tokens": 1000, "output_tokens": 2000, "cache_creation_input_tokens": 400, "cache_read_input_tokens": 800}
    assert usage_cost(u, p) == pytest.approx((5000 + 50000 + 2500 + 400) / 1e6)
    assert usage_cost(u, p, batch=True) == pytest.approx(usage_cost(u, p) / 2)
    assert max_request_cost(100, 1000, p) == pytest.approx((100 * 6.25 + 1000 * 25) / 1e6)


def _row(pid, k, content="The answer is 3.", reasoning="1 + 2 = 3", stop="end_turn", verified=True):
    return {"id": f"{pid}-{k}", "prompt_id": pid, "sample_index": k, "split": "train", "stop_reason": stop,
            "verified": verified, "messages": [{"role": "user", "content": f"q{pid}", "reasoning_content": None},
                                               {"role": "assistant", "content": content, "reasoning_content": reasoning}]}


def test_filters_reasons_and_duplicates():
    rows = [_row("a", 0), _row("a", 1), _row("b", 0, stop="max_tokens"), _row("c", 0, content="  "),
            _row("d", 0, reasoning=""), _row("e", 0, verified=False), _row("f", 0, content="<think>x"),
            _row("g", 0, reasoning=None)]
    out, counts = apply_filters(rows, ["max_tokens", "unclosed_thinking", "empty_answer", "empty_thinking",
                                       "unverified", "duplicate"], verify=True)
    why = {r["id"]: r["reject_reason"] for r in out}
    assert why == {"a-0": None, "a-1": "duplicate", "b-0": "max_tokens", "c-0": "empty_answer",
                   "d-0": "empty_thinking", "e-0": "unverified", "f-0": "unclosed_thinking", "g-0": "empty_thinking"}
    assert all(r["split"] == ("rejected" if r["reject_reason"] else "train") for r in out)
    assert all(r["origin_split"] == "train" for r in out)
    assert counts["kept"] == 1 and sum(counts.values()) == 8
    out2, _ = apply_filters(rows, ["max_tokens"], verify=False)  # only what is switched on
    assert {r["id"] for r in out2 if r["reject_reason"]} == {"b-0"}
    with pytest.raises(ValueError, match="generate.filters"):
        apply_filters(rows, ["bogus"], verify=False)


def test_heldout_rows_are_flagged_not_moved():
    rows = [dict(_row("a", 0, verified=False), split="test"), dict(_row("b", 0, stop="max_tokens"), split="ood"),
            _row("c", 0, verified=False), dict(_row("d", 0), split="test")]
    out, counts = apply_filters(rows, ["max_tokens", "unverified"], verify=True)
    got = {r["id"]: (r["split"], r["reject_reason"]) for r in out}
    assert got == {"a-0": ("test", "unverified"), "b-0": ("ood", "max_tokens"), "c-0": ("rejected", "unverified"),
                   "d-0": ("test", None)}
    assert counts == {"heldout_unverified": 1, "heldout_max_tokens": 1, "unverified": 1, "kept": 1}
    out, _ = apply_filters(rows, ["unverified"], verify=True, splits=["train", "test"])
    assert {r["id"]: r["split"] for r in out}["a-0"] == "rejected"


def test_config_checks_name_the_field():
    with pytest.raises(ConfigError, match="teacher.temperature"):
        TeacherConfig(provider="anthropic", temperature=0.7)
    with pytest.raises(ConfigError, match="teacher.max_tokens"):
        TeacherConfig(provider="anthropic", effort="high", max_tokens=16000)
    with pytest.raises(ConfigError, match="teacher.effort"):
        TeacherConfig(provider="anthropic", effort="max")  # not in allowed_efforts
    with pytest.raises(ConfigError, match="teacher.thinking_display"):
        TeacherConfig(provider="anthropic", thinking_display="full")
    with pytest.raises(ConfigError, match="generate.filters"):
        GenerateConfig(filters=["nope"])
    with pytest.raises(ConfigError, match="generate.max_cost_usd"):
        GenerateConfig(max_cost_usd=-1)
