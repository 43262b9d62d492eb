"""A local OpenAI-compatible ``/v1/chat/completions`` server for benchmark evals: answers come from a
reply function of (model, last user message), so a test decides what each served model says.

It speaks the real protocol (JSON body, ``choices[0].message`` with ``reasoning_content`` like vLLM's
reasoning parser, ``finish_reason`` ``stop``/``length``, ``usage``, OpenAI-shaped errors with
``retry-after``), shares the fault plan of the other fakes, records every request body, and can hold a
speed limit: ``tokens_per_s`` per request with at most ``slots`` requests decoding at once (a server's
batch), others queue; run as a script it serves a fixed answer for the backend benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_api.common import Faults, ThreadedServer, drop_connection

# (reasoning or None, content, completion tokens or None = len(text) // 4)
Reply = tuple[str | None, str, int | None]


def default_reply(model: str, prompt: str, body: dict[str, Any]) -> Reply:
    return "Let me think.", "The answer is $\\boxed{1}$.", None


@dataclass
class State:
    reply: Callable[[str, str, dict[str, Any]], Reply] = default_reply  # (model, last user message, request body)
    models: tuple[str, ...] | None = None  # served names; others get 404 (None: any)
    faults: Faults = field(default_factory=Faults)
    tokens_per_s: float | None = None  # decode speed per request (None: answer at once)
    slots: int = 1_000_000  # requests decoding at once
    record: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count = field(default_factory=itertools.count)
    _sem: asyncio.Semaphore | None = None


def make_app(state: State) -> web.Application:
    def err(status: int, etype: str, message: str, retry_after: float | None = None) -> web.Response:
        headers = {"x-request-id": f"req_b{next(state.ids):06d}"}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return web.json_response({"error": {"message": message, "type": etype, "code": etype, "param": None}},
                                 status=status, headers=headers)

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if state.record:
            state.requests.append(body)
        model = body.get("model")
        if state.models is not None and model not in state.models:
            return err(404, "NotFoundError", f"The model `{model}` does not exist.")
        fault = state.faults.draw()
        if fault == "rate_limit":
            return err(429, "rate_limit_exceeded", "Rate limit reached", state.faults.retry_after_s)
        if fault == "overloaded":
            return err(503, "server_error", "The server is overloaded")
        if fault == "server_error":
            return err(500, "server_error", "Internal error")
        if fault == "drop":
            return await drop_connection(request)
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        reasoning, content, n_tok = state.reply(model, users[-1] if users else "", body)
        full = (reasoning or "") + content
        n_tok = n_tok if n_tok is not None else max(1, len(full) // 4)
        max_tokens = int(body.get("max_tokens") or 1 << 30)
        finish = "stop"
        if n_tok > max_tokens:  # the budget cuts the output: inside the thinking when it is that long
            finish, n_tok = "length", max_tokens
            keep = 4 * max_tokens
            if reasoning is not None and len(reasoning) >= keep:
                reasoning, content = reasoning[:keep], ""
            else:
                content = content[:max(0, keep - len(reasoning or ""))]
        if state.tokens_per_s:
            if state._sem is None:
                state._sem = asyncio.Semaphore(state.slots)
            async with state._sem:
                await asyncio.sleep(n_tok / state.tokens_per_s)
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning is not None:
            msg["reasoning_content"] = reasoning
        prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
        resp = {"id": f"chatcmpl-{next(state.ids)}", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tok,
                          "total_tokens": prompt_tokens + n_tok}}
        return web.json_response(resp, headers={"x-request-id": f"req_b{next(state.ids):06d}"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


class BenchFake(ThreadedServer):
    def __init__(self, state: State | None = None, port: int = 0):
        self.state = state or State()
        super().__init__(make_app(self.state), port)


def main() -> None:
    ap = argparse.ArgumentParser(description="the benchmark fake, in its own process")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tokens-per-s", type=float, default=None)
    ap.add_argument("--slots", type=int, default=1_000_000)
    ap.add_argument("--answer-tokens", type=int, default=64)
    args = ap.parse_args()
    text = "x" * (4 * args.answer_tokens - 30)
    state = State(reply=lambda m, p, b: ("ok", f"{text} \\boxed{{1}}", args.answer_tokens),
                  tokens_per_s=args.tokens_per_s, slots=args.slots, record=False)
    srv = BenchFake(state, args.port).start()
    print(f"PORT {srv.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
