"""A local server speaking the Anthropic Messages API: JSON and SSE, thinking, errors, Message Batches.

It answers "What is A + B?" prompts with a thinking block (its length follows the thinking budget or
the effort) and the text "The answer is N."; it records every request body it receives. Run it in a
thread (``AnthropicFake(...).start()``) or as a process: ``python -m tests.fake_api.anthropic_server
--port 0`` prints ``PORT <n>`` and serves until killed.

Shapes follow the public API: errors are ``{"type": "error", "error": {"type", "message"}, "request_id"}``
with a ``request-id`` header (``retry-after`` on 429/529); the spend cap is a 429 whose
``error.details.error_code`` is ``enforced_spend_limit_reached``; batch results are JSONL lines
``{"custom_id", "result": {"type": "succeeded" | "errored" | "expired" | "canceled", ...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_api.common import Faults, ThreadedServer, drop_connection

_SUM = re.compile(r"(\d+)\s*\+\s*(\d+)")
# model -> (thinking types, effort levels, lifecycle), after the public model pages
MODELS = {
    "claude-opus-5-5": (("adaptive",), ("low", "medium", "high", "xhigh", "max"), "active"),
    "claude-opus-5": (("adaptive",), ("low", "medium", "high", "xhigh", "max"), "legacy"),
    "claude-opus-4-8": (("adaptive",), ("low", "medium", "high", "xhigh", "max"), "legacy"),
    "claude-opus-4-5": (("enabled",), ("low", "medium", "high"), "deprecated"),
    "claude-sonnet-4-6": (("enabled", "adaptive"), ("low", "medium", "high"), "active"),
    "claude-opus-4-7": (("adaptive",), ("low", "medium", "high", "xhigh", "max"), "active"),
    "claude-haiku-4-5": (("enabled",), (), "active"),
}
# models that take output_config.effort only with this beta header (as the API did at the effort launch)
EFFORT_BETA = {"claude-opus-4-5": "effort-2025-11-24"}
EFFORT_LINES = {"low": 1, "medium": 3, "high": 6, "xhigh": 8, "max": 10}


@dataclass
class Behaviour:
    """Which prompts get odd replies: a prompt whose a+b is divisible by the number gets it (0: never)."""

    max_tokens_every: int = 0  # stop_reason max_tokens, answer cut
    wrong_every: int = 0  # a wrong sum
    redacted_every: int = 0  # an extra redacted_thinking block
    empty_answer_every: int = 0  # no text block
    invalid_every: int = 0  # a 400 invalid_request_error (never succeeds)
    omit_thinking_models: tuple[str, ...] = ("claude-opus-4-7", "claude-opus-4-8", "claude-opus-5", "claude-opus-5-5")  # models that omit thinking unless asked


@dataclass
class State:
    latency_s: float = 0.0
    faults: Faults = field(default_factory=Faults)
    behaviour: Behaviour = field(default_factory=Behaviour)
    spend_limit_after: int | None = None  # successful messages before every request hits the spend cap
    batch_delay_s: float = 0.2  # a batch ends this long after creation
    batch_fail_first: float = 0.0  # share of custom_ids whose first batch result is errored/expired
    record: bool = True
    rejected_keys: set[str] = field(default_factory=set)  # keys the server answers 401 to
    models_api: bool = True  # False: /v1/models answers a bare 404, as some proxies do
    batches_api: bool = True  # False: /v1/messages/batches answers a bare 404 (a proxy without batches)
    requests: list[dict[str, Any]] = field(default_factory=list)
    ok: int = 0
    faults_served: dict[str, int] = field(default_factory=dict)
    cache_seen: set[str] = field(default_factory=set)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_seen: set[str] = field(default_factory=set)
    ids: itertools.count = field(default_factory=itertools.count)


def _rid(state: State) -> str:
    return f"req_fake{next(state.ids):08d}"


def error_response(status: int, etype: str, message: str, state: State, retry_after: float | None = None,
                   details: dict[str, Any] | None = None) -> web.Response:
    rid = _rid(state)
    err: dict[str, Any] = {"type": etype, "message": message}
    if details:
        err["details"] = details
    headers = {"request-id": rid}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return web.json_response({"type": "error", "error": err, "request_id": rid}, status=status, headers=headers)


def api_key_of(request: web.Request) -> str | None:
    """The key a client sent: ``x-api-key`` or ``Authorization: Bearer`` (newer SDKs send the latter)."""
    auth = request.headers.get("authorization", "")
    return request.headers.get("x-api-key") or (auth[7:] if auth.lower().startswith("bearer ") else None)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict))


def compose_message(body: dict[str, Any], state: State) -> dict[str, Any]:
    """The reply a thinking model would give to ``body`` (a Messages API request)."""
    beh = state.behaviour
    prompt = _text_of(body["messages"][-1]["content"])
    m = _SUM.search(prompt)
    a, b = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    total = a + b

    def hit(every: int) -> bool:
        return every > 0 and total % every == 0

    thinking_cfg = body.get("thinking") or {}
    effort = (body.get("output_config") or {}).get("effort")
    if thinking_cfg.get("type") == "enabled":
        lines = max(1, min(12, thinking_cfg["budget_tokens"] // 2048))
    else:
        lines = EFFORT_LINES.get(effort or "high", 6)
    full = "\n".join(f"Step {i + 1}: checking {a} + {b} column {i + 1}." for i in range(lines))
    full += f"\nSo the sum is {total}."
    display = thinking_cfg.get("display")
    omitted = display == "omitted" or (display is None and body["model"] in beh.omit_thinking_models)
    visible = "" if omitted else full

    answer = total + 1 if hit(beh.wrong_every) else total
    text = f"The answer is {answer}."
    stop = "end_turn"
    content: list[dict[str, Any]] = []
    if thinking_cfg.get("type") in ("enabled", "adaptive"):
        content.append({"type": "thinking", "thinking": visible, "signature": "sig" + uuid.uuid4().hex[:12]})
        if hit(beh.redacted_every):
            content.append({"type": "redacted_thinking", "data": "EncryptedOpaque" + uuid.uuid4().hex[:8]})
    thinking_tokens = len(full) // 3 if content else 0  # billed in full even when summarized or omitted
    if hit(beh.max_tokens_every):
        text, stop = "The answer", "max_tokens"
    if not hit(beh.empty_answer_every):
        content.append({"type": "text", "text": text})

    system = body.get("system")
    sys_text, cached = "", False
    if isinstance(system, list):
        sys_text = _text_of(system)
        cached = any("cache_control" in blk for blk in system)
    elif isinstance(system, str):
        sys_text = system
    cache_write = cache_read = 0
    if cached:
        if sys_text in state.cache_seen:
            cache_read = len(sys_text) // 4 + 1
        else:
            state.cache_seen.add(sys_text)
            cache_write = len(sys_text) // 4 + 1
    input_tokens = len(json.dumps(body["messages"])) // 4 + (0 if cached else len(sys_text) // 4)
    out_tokens = body["max_tokens"] if stop == "max_tokens" else thinking_tokens + len(text) // 4 + 1
    return {
        "id": "msg_" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": out_tokens,
                  "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read,
                  "output_tokens_details": {"thinking_tokens": thinking_tokens}},
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def stream_message(request: web.Request, msg: dict[str, Any], rid: str, fail_midway: bool,
                         cut_midway: bool = False) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", "request-id": rid,
                                       "cache-control": "no-cache"})
    await resp.prepare(request)
    usage = dict(msg["usage"])
    start = {**msg, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1, "output_tokens_details": None}}
    await resp.write(_sse("message_start", {"type": "message_start", "message": start}))
    await resp.write(_sse("ping", {"type": "ping"}))
    for i, block in enumerate(msg["content"]):
        if cut_midway and i == 1:  # the connection drops: no error event, no message_stop
            request.transport.abort()
            return resp
        if fail_midway and i == 1:
            await resp.write(_sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                       "message": "Overloaded"}}))
            await resp.write_eof()
            return resp
        if block["type"] == "thinking":
            await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                          "content_block": {"type": "thinking", "thinking": "",
                                                                            "signature": ""}}))
            for piece in re.findall(r".{1,40}", block["thinking"], re.S):
                await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                    "type": "thinking_delta", "thinking": piece}}))
            await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                "type": "signature_delta", "signature": block["signature"]}}))
        elif block["type"] == "redacted_thinking":
            await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                          "content_block": block}))
        else:
            await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                          "content_block": {"type": "text", "text": ""}}))
            for piece in re.findall(r".{1,8}", block["text"], re.S):
                await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                    "type": "text_delta", "text": piece}}))
        await resp.write(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
    await resp.write(_sse("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"], "input_tokens": usage["input_tokens"],
                  "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                  "cache_read_input_tokens": usage["cache_read_input_tokens"],
                  "output_tokens_details": usage["output_tokens_details"]}}))
    await resp.write(_sse("message_stop", {"type": "message_stop"}))
    await resp.write_eof()
    return resp


def validate_body(body: Any, betas: str | None = None) -> str | None:
    """The API's checks that matter here (a 400 otherwise); ``betas``: the ``anthropic-beta`` header."""
    if not isinstance(body, dict):
        return "body: expected an object"
    for k in ("model", "max_tokens", "messages"):
        if k not in body:
            return f"{k}: Field required"
    th = body.get("thinking")
    cap = MODELS.get(body["model"])
    effort = (body.get("output_config") or {}).get("effort")
    if cap is not None:
        types, efforts, _ = cap
        if th and th.get("type") not in types:
            return (f'"thinking.type.{th.get("type")}" is not supported for this model. Use '
                    f'{" or ".join(types)}.')
        if effort is not None and effort not in efforts:
            return f"output_config.effort: {effort!r} is not supported for this model"
        need = EFFORT_BETA.get(body["model"])
        if effort is not None and need and need not in [b.strip() for b in (betas or "").split(",")]:
            return "output_config: Extra inputs are not permitted"
    if th and th.get("type") == "enabled":
        if th.get("budget_tokens", 0) < 1024:
            return "thinking.budget_tokens: must be >= 1024"
        if th["budget_tokens"] >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    if th and body.get("temperature", 1) != 1:
        return "`temperature` may only be set to 1 when thinking is enabled"
    return None


def make_app(state: State) -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        key = api_key_of(request)
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return error_response(400, "invalid_request_error", "body is not JSON", state)
        if state.record:
            state.requests.append({"path": request.path, "api_key": key,
                                   "anthropic_version": request.headers.get("anthropic-version"),
                                   "anthropic_beta": request.headers.get("anthropic-beta"), "body": body})
        if not key or key in state.rejected_keys:
            return error_response(401, "authentication_error", "invalid x-api-key", state)
        if isinstance(body, dict) and body.get("model") not in MODELS:  # as the API: an unknown model is a 404
            return error_response(404, "not_found_error", f"model: {body.get('model')}", state)
        bad = validate_body(body, request.headers.get("anthropic-beta"))
        m = _SUM.search(_text_of(body["messages"][-1]["content"])) if not bad else None
        every = state.behaviour.invalid_every
        if m and every and (int(m.group(1)) + int(m.group(2))) % every == 0:
            bad = "messages: this prompt is refused by the fake (invalid_every)"
        if bad:
            return error_response(400, "invalid_request_error", bad, state)
        if state.latency_s:
            await asyncio.sleep(state.latency_s)
        if state.spend_limit_after is not None and state.ok >= state.spend_limit_after:
            return error_response(429, "rate_limit_error", "You have reached your specified API usage limits.",
                                  state, details={"error_code": "enforced_spend_limit_reached"})
        fault = state.faults.draw()
        if fault in ("stream_error", "stream_cut") and not body.get("stream"):
            fault = None
        if fault:
            state.faults_served[fault] = state.faults_served.get(fault, 0) + 1
        if fault == "rate_limit":
            return error_response(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute "
                                  "rate limit", state, retry_after=state.faults.retry_after_s)
        if fault == "overloaded":
            return error_response(529, "overloaded_error", "Overloaded", state)
        if fault == "server_error":
            return error_response(500, "api_error", "Internal server error", state)
        if fault == "drop":
            return await drop_connection(request)
        rid = _rid(state)
        if fault == "malformed" and body.get("stream"):  # an SSE event whose data is cut JSON
            resp = web.StreamResponse(headers={"content-type": "text/event-stream", "request-id": rid})
            await resp.prepare(request)
            await resp.write(b'event: message_start\ndata: {"type": "message_start", "message": {"id": \n\n')
            await resp.write_eof()
            return resp
        if fault == "malformed":
            return web.Response(text='{"id": "msg_x", "type": "message", "content": [', status=200,
                                content_type="application/json", headers={"request-id": rid})
        msg = compose_message(body, state)
        if body.get("stream"):
            midway = len(msg["content"]) > 1
            resp = await stream_message(request, msg, rid, fail_midway=fault == "stream_error" and midway,
                                        cut_midway=fault == "stream_cut" and midway)
        else:
            resp = web.json_response(msg, headers={"request-id": rid})
        if fault not in ("stream_error", "stream_cut"):
            state.ok += 1
        return resp

    # ------------------------------------------------------------------ Message Batches
    def batch_view(b: dict[str, Any], base: str) -> dict[str, Any]:
        ended = time.time() >= b["ends_at"]
        n = len(b["requests"])
        counts = {"processing": 0 if ended else n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            for r in b["results"]:
                counts[r["result"]["type"]] += 1
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b["created"]))
        return {"id": b["id"], "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "created_at": iso,
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b["created"] + 86400)),
                "ended_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b["ends_at"])) if ended else None,
                "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"{base}/v1/messages/batches/{b['id']}/results" if ended else None}

    def base_url(request: web.Request) -> str:
        return f"http://{request.host}"

    async def create_batch(request: web.Request) -> web.Response:
        if not state.batches_api:
            raise web.HTTPNotFound()
        if not api_key_of(request):
            return error_response(401, "authentication_error", "x-api-key header is required", state)
        body = await request.json()
        reqs = body.get("requests") or []
        if state.record:
            state.requests.append({"path": request.path, "api_key": api_key_of(request),
                                   "anthropic_beta": request.headers.get("anthropic-beta"), "body": body})
        ids = [r["custom_id"] for r in reqs]
        if len(set(ids)) != len(ids):
            return error_response(400, "invalid_request_error", "custom_id values must be unique", state)
        results = []
        for r in reqs:
            cid, params = r["custom_id"], r["params"]
            bad = validate_body(params, request.headers.get("anthropic-beta"))
            first = cid not in state.batch_seen
            state.batch_seen.add(cid)
            if bad:
                res = {"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error",
                                                                               "message": bad}}}
            elif first and state.faults.rng.random() < state.batch_fail_first:
                if state.faults.rng.random() < 0.5:
                    res = {"type": "expired"}
                else:
                    res = {"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error",
                                                                                   "message": "Overloaded"}}}
            else:
                res = {"type": "succeeded", "message": compose_message(params, state)}
            results.append({"custom_id": cid, "result": res})
        bid = "msgbatch_" + uuid.uuid4().hex[:24]
        now = time.time()
        b = {"id": bid, "requests": reqs, "results": results, "created": now, "ends_at": now + state.batch_delay_s}
        state.batches[bid] = b
        return web.json_response(batch_view(b, base_url(request)), headers={"request-id": _rid(state)})

    async def get_batch(request: web.Request) -> web.Response:
        b = state.batches.get(request.match_info["bid"])
        if b is None:
            return error_response(404, "not_found_error", "batch not found", state)
        return web.json_response(batch_view(b, base_url(request)), headers={"request-id": _rid(state)})

    async def batch_results(request: web.Request) -> web.Response:
        b = state.batches.get(request.match_info["bid"])
        if b is None or time.time() < b["ends_at"]:
            return error_response(404, "not_found_error", "results are not available yet", state)
        lines = "".join(json.dumps(r) + "\n" for r in b["results"])
        return web.Response(body=lines.encode(), content_type="application/binary",
                            headers={"request-id": _rid(state)})

    # ------------------------------------------------------------------ Models API
    async def get_model(request: web.Request) -> web.Response:
        if state.record:
            state.requests.append({"path": request.path, "api_key": api_key_of(request), "body": None})
        if not state.models_api:
            raise web.HTTPNotFound()
        if not api_key_of(request) or api_key_of(request) in state.rejected_keys:
            return error_response(401, "authentication_error", "invalid x-api-key", state)
        mid = request.match_info["model"]
        cap = MODELS.get(mid)
        if cap is None:
            return error_response(404, "not_found_error", f"model: {mid}", state)
        thinking_modes, efforts, lifecycle = cap

        def sup(ok: bool) -> dict[str, bool]:
            return {"supported": ok}

        return web.json_response({
            "id": mid, "type": "model", "display_name": mid, "created_at": "2025-11-01T00:00:00Z",
            "lifecycle": lifecycle, "max_tokens": 64000, "max_input_tokens": 200000,
            "capabilities": {
                "batch": sup(True), "citations": sup(True), "code_execution": sup(False), "image_input": sup(True),
                "pdf_input": sup(True), "structured_outputs": sup(True),
                "effort": {"supported": bool(efforts), **{e: sup(e in efforts) for e in
                                                           ("low", "medium", "high", "xhigh", "max")}},
                "thinking": {"supported": True, "types": {t: sup(t in thinking_modes) for t in
                                                          ("enabled", "adaptive", "disabled", "between_tools")}}}},
            headers={"request-id": _rid(state)})

    async def list_models(request: web.Request) -> web.Response:
        if state.record:
            state.requests.append({"path": request.path, "api_key": api_key_of(request), "body": None})
        if not state.models_api:
            raise web.HTTPNotFound()
        if not api_key_of(request) or api_key_of(request) in state.rejected_keys:
            return error_response(401, "authentication_error", "invalid x-api-key", state)
        data = [{"id": m, "type": "model", "display_name": m, "created_at": "2025-11-01T00:00:00Z"} for m in MODELS]
        return web.json_response({"data": data, "has_more": False, "first_id": data[0]["id"],
                                  "last_id": data[-1]["id"]}, headers={"request-id": _rid(state)})

    # ------------------------------------------------------------------ test control
    async def control(request: web.Request) -> web.Response:
        what = request.match_info["what"]
        if what == "requests":
            return web.json_response(state.requests)
        return web.json_response({"ok": state.ok, "batches_created": len(state.batches),
                                  "faults_served": state.faults_served, "requests": len(state.requests)})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/batches", create_batch)
    app.router.add_get("/v1/messages/batches/{bid}", get_batch)
    app.router.add_get("/v1/messages/batches/{bid}/results", batch_results)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/_control/{what}", control)
    return app


class AnthropicFake(ThreadedServer):
    def __init__(self, state: State | None = None, port: int = 0):
        self.state = state or State()
        super().__init__(make_app(self.state), port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--batch-delay", type=float, default=0.2)
    ap.add_argument("--batch-fail-first", type=float, default=0.0)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    state = State(latency_s=args.latency, batch_delay_s=args.batch_delay, batch_fail_first=args.batch_fail_first,
                  record=not args.no_record)
    srv = AnthropicFake(state, args.port).start()
    print(f"PORT {srv.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
