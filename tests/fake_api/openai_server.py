"""A local OpenAI-compatible ``/v1/chat/completions`` server answering "What is A + B?" with reasoning.

``reasoning_style`` picks where the reasoning goes, as real servers differ: ``reasoning_content``
(vLLM, SGLang), ``reasoning`` (OpenRouter), ``think_tags`` (``<think>...</think>`` in the content),
``unclosed`` (``<think>`` never closed). Errors use OpenAI's shape ``{"error": {"message", "type",
"code"}}`` with ``x-request-id``; ``retry-after`` on 429.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_api.common import Faults, ThreadedServer, drop_connection

_SUM = re.compile(r"(\d+)\s*\+\s*(\d+)")
EFFORT_LINES = {"low": 1, "medium": 3, "high": 6}


@dataclass
class State:
    reasoning_style: str = "reasoning_content"
    latency_s: float = 0.0
    faults: Faults = field(default_factory=Faults)
    quota_exhausted: bool = False
    length_every: int = 0  # a prompt whose a+b is divisible by this is cut: finish_reason "length" (0: never)
    requests: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count = field(default_factory=itertools.count)


def make_app(state: State) -> web.Application:
    def err(status: int, etype: str, code: str | None, message: str, retry_after: float | None = None):
        headers = {"x-request-id": f"req_oa{next(state.ids):06d}"}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return web.json_response({"error": {"message": message, "type": etype, "code": code, "param": None}},
                                 status=status, headers=headers)

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append({"auth": request.headers.get("authorization"), "body": body})
        if state.latency_s:
            await asyncio.sleep(state.latency_s)
        if state.quota_exhausted:
            return err(429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota.")
        fault = state.faults.draw()
        if fault == "rate_limit":
            return err(429, "rate_limit_exceeded", "rate_limit_exceeded", "Rate limit reached",
                       state.faults.retry_after_s)
        if fault == "overloaded":
            return err(503, "server_error", None, "The server is overloaded")
        if fault == "server_error":
            return err(500, "server_error", None, "Internal error")
        if fault == "drop":
            return await drop_connection(request)
        if fault == "malformed":
            return web.Response(text='{"id": "chatcmpl-x", "choices": [', content_type="application/json")
        prompt = body["messages"][-1]["content"]
        m = _SUM.search(prompt)
        a, b = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        lines = EFFORT_LINES.get(body.get("reasoning_effort") or "medium", 3)
        reasoning = "\n".join(f"Step {i + 1}: add {a} and {b}, column {i + 1}." for i in range(lines))
        answer = f"The answer is {a + b}."
        cut = state.length_every > 0 and (a + b) % state.length_every == 0
        if cut:  # the output limit reached mid-answer, as a server reports it
            answer = "The answer"
        msg: dict[str, Any] = {"role": "assistant", "content": answer}
        style = state.reasoning_style
        if style in ("reasoning_content", "reasoning"):
            msg[style] = reasoning
        elif style == "think_tags":
            msg["content"] = f"<think>\n{reasoning}\n</think>\n\n{answer}"
        elif style == "unclosed":
            msg["content"] = f"<think>\n{reasoning}"
        prompt_tokens = len(json.dumps(body["messages"])) // 4
        completion_tokens = body["max_tokens"] if cut else (len(reasoning) + len(answer)) // 4
        resp = {"id": f"chatcmpl-{next(state.ids)}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"], "choices": [{"index": 0, "message": msg,
                                                     "finish_reason": "length" if cut else "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens,
                          "prompt_tokens_details": {"cached_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": len(reasoning) // 4}}}
        return web.json_response(resp, headers={"x-request-id": f"req_oa{next(state.ids):06d}"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


class OpenAIFake(ThreadedServer):
    def __init__(self, state: State | None = None, port: int = 0):
        self.state = state or State()
        super().__init__(make_app(self.state), port)
