"""Any OpenAI-compatible chat completions endpoint (OpenRouter, vLLM, SGLang) through the ``openai`` SDK.

``teacher.effort`` is sent as ``reasoning_effort``. The reasoning is read from the message's
``reasoning_content`` (vLLM, SGLang, DeepSeek) or ``reasoning`` (OpenRouter) field, else from
``<think>...</think>`` in the content (a missing closing tag is flagged as unclosed thinking).
The SDK's own retries are off: the engine retries.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import openai

from distill_lab.errors import ConfigError
from distill_lab.tasks.base import Problem
from distill_lab.teachers.base import Teacher, TeacherError, TeacherReply
from distill_lab.teachers.config import TeacherConfig
from distill_lab.teachers.retry import parse_retry_after
from distill_lab.teachers.transport import connection_cause, short_text

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal", "tool_calls": "tool_use"}
SPEND_CODES = {"insufficient_quota", "billing_hard_limit_reached"}
_THINK = re.compile(r"^\s*(?:<think>)?(.*?)</think>(.*)$", re.S)


def split_think(content: str) -> tuple[str | None, str, bool]:
    """(reasoning, answer, unclosed) from content that may carry ``<think>...</think>``.

    A reply whose template opened the tag in the prompt starts without ``<think>`` and still has
    ``</think>``: the text before it is the reasoning. ``<think>`` with no closing tag is unclosed.
    """
    m = _THINK.match(content)
    if m:
        return m.group(1).strip() or None, m.group(2).strip(), False
    if "<think>" in content:
        before, _, after = content.partition("<think>")
        return after.strip() or None, before.strip(), True
    return None, content, False


def classify_status_error(e: openai.APIStatusError) -> TeacherError:
    status = e.status_code
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    code, msg = err.get("code") or err.get("type"), str(err.get("message") or e.message)
    rid = getattr(e, "request_id", None)
    retry_after = parse_retry_after(e.response.headers.get("retry-after"))
    text = f"{code or 'error'}: {short_text(msg)}"
    if status == 402 or code in SPEND_CODES:
        return TeacherError(text, kind="spend_limit", status=status, request_id=rid)
    if status in (408, 409, 429) or status >= 500:
        return TeacherError(text, kind="retryable", status=status, retry_after=retry_after, request_id=rid)
    return TeacherError(text, kind="fatal", status=status, request_id=rid)


class OpenAICompatTeacher(Teacher):
    def __init__(self, cfg: TeacherConfig):
        super().__init__(cfg)
        key = "EMPTY"  # local servers (vLLM, SGLang) take any key
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env, "").strip()
            if not key:
                raise ConfigError(f"teacher.api_key_env: the environment variable {cfg.api_key_env} is not set "
                                  "(set it, or teacher.api_key_env=null for a server without keys)")
        self.client = openai.AsyncOpenAI(api_key=key, base_url=cfg.base_url, max_retries=0, timeout=cfg.timeout_s)

    async def aclose(self) -> None:
        await self.client.close()

    def endpoint(self) -> str:
        return "POST " + str(self.client.base_url).rstrip("/") + "/chat/completions"

    def fingerprint(self) -> dict[str, Any]:
        fp = super().fingerprint()
        fp["base_url"] = self.cfg.base_url
        return fp

    def request_params(self, problem: Problem) -> dict[str, Any]:
        c = self.cfg
        msgs = problem.messages()
        if c.system_prompt:
            msgs = [{"role": "system", "content": c.system_prompt}, *msgs]
        params: dict[str, Any] = {"model": c.model, "messages": msgs, "max_tokens": c.max_tokens,
                                  "temperature": c.temperature, "reasoning_effort": c.effort_name}
        if c.top_p is not None:
            params["top_p"] = c.top_p
        return params

    async def complete(self, problem: Problem, sample_index: int) -> TeacherReply:
        try:
            resp = await self.client.chat.completions.create(**self.request_params(problem))
        except openai.APIStatusError as e:
            raise classify_status_error(e) from e
        except openai.APIConnectionError as e:
            raise TeacherError(f"connection: {type(e).__name__}: {e}", kind="retryable",
                               cause=connection_cause(e)) from e
        except (openai.APIResponseValidationError, json.JSONDecodeError) as e:
            raise TeacherError(f"unreadable reply: {type(e).__name__}: {e}", kind="retryable", cause="malformed") from e
        if not resp.choices:
            raise TeacherError("unreadable reply: no choices", kind="retryable", request_id=resp._request_id,
                               cause="malformed")
        return parse_completion(resp.model_dump(), resp._request_id)


def parse_completion(resp: dict[str, Any], request_id: str | None) -> TeacherReply:
    choice = resp["choices"][0]
    msg = choice.get("message") or {}
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    unclosed = False
    if not reasoning:
        reasoning, content, unclosed = split_think(content)
    u = resp.get("usage") or {}
    cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    usage = {"input_tokens": int(u.get("prompt_tokens") or 0) - cached, "output_tokens": int(u.get("completion_tokens") or 0),
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
             "thinking_tokens": int(((u.get("completion_tokens_details") or {}).get("reasoning_tokens")) or 0)}
    finish = choice.get("finish_reason")
    return TeacherReply(content=content.strip(), reasoning=(reasoning or "").strip() or None,
                        stop_reason=STOP_REASONS.get(finish, finish), usage=usage, request_id=request_id,
                        extra={"thinking_unclosed": unclosed})
