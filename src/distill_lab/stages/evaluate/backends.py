"""Eval-time generation backends (``eval.backend.name``), one interface, the same outputs.

- ``hf``: batched ``generate`` on the model in memory (``evaluation/generation.py``).
- ``openai_compat``: an OpenAI-compatible chat completions server (vLLM, SGLang, llama.cpp), with
  ``eval.backend.concurrency`` requests in flight, the teachers' backoff (``teachers/retry.Backoff``,
  never shorter than the server's ``retry-after``, which also holds every new request) and error classes
  (``classify_status_error``: 429/5xx/dropped connections retried, 4xx fatal).

Every output is the full text with its thinking as ``<think>…</think>`` (a server's ``reasoning_content``
is put back in tags), whether the token budget cut it (``truncated``), and its token count.

Stop sequences (``eval.suite.stop``) never fire inside the thinking: with ``hf`` a stopping criterion
looks for them only after ``</think>`` (or in outputs with no thinking at all); with ``openai_compat``
only end of turn stops the server (a stop string sent to it would also fire inside the thinking), and
the answer is cut at the first stop sequence afterwards. Either way the text is cut at the stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from distill_lab.stages.evaluate.extract import THINK_CLOSE, THINK_OPEN

log = logging.getLogger(__name__)


@dataclass
class Output:
    text: str  # thinking as <think>…</think>, then the answer; cut at the first stop sequence of the answer
    n_tokens: int | None  # generated tokens (the server's completion_tokens)
    truncated: bool  # the token budget ended it (no end of turn, no stop sequence)


@dataclass
class Sampling:
    n: int  # outputs per prompt
    greedy: bool  # temperature 0 (n must be 1)
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    stop: tuple[str, ...] = ()


def prompt_opens_thinking(rendered: str) -> bool:
    """The chat template pre-fills ``<think>`` (the generation starts inside the thinking)."""
    return rendered.rfind(THINK_OPEN) > rendered.rfind(THINK_CLOSE)


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str], *, opened: bool = False) -> tuple[str, bool]:
    """``text`` cut at the first stop sequence that lies after the thinking; (text, whether it was cut).

    The answer starts after the last ``</think>``; with no ``</think>``, after nothing when the output
    never opened a thinking block (``<think>`` absent and ``opened`` False), else there is no answer yet.
    """
    if not stops:
        return text, False
    close = text.find(THINK_CLOSE)
    if close >= 0:
        start = close + len(THINK_CLOSE)
    elif opened or THINK_OPEN in text:
        return text, False
    else:
        start = 0
    hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    if not hits:
        return text, False
    return text[:min(hits)], True


def with_thinking_tags(text: str, opened: bool) -> str:
    """An output whose ``<think>`` was pre-filled by the template gets it back, so parsing is uniform."""
    return f"{THINK_OPEN}{text}" if opened and not text.lstrip().startswith(THINK_OPEN) else text


# ------------------------------------------------------------------------------------------ hf
class StopAfterThinking:
    """A transformers stopping criterion: a row stops when one of ``stops`` appears in its answer part.

    Per row it looks at the last ``window`` generated tokens only (no quadratic re-decoding of long
    thinking) and remembers whether the thinking has closed; the ``</think>`` tag is recognised in the
    decoded window, so tokenizers without a special token for it work too.
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_len: int, opened: bool, window: int = 64):
        self.tok, self.stops, self.prompt_len, self.opened, self.window = tokenizer, stops, prompt_len, opened, window
        self.closed_at: dict[int, int] = {}  # generated tokens up to and including the row's </think>
        self.started: dict[int, bool] = {}  # a <think> appeared in the row's output

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        new = input_ids[:, self.prompt_len:]
        length = new.shape[1]
        done = torch.zeros(new.shape[0], dtype=torch.bool, device=input_ids.device)
        for b in range(new.shape[0]):
            if b not in self.closed_at:
                tail = self.tok.decode(new[b, -self.window:].tolist(), skip_special_tokens=False)
                if THINK_OPEN in tail:
                    self.started[b] = True
                if THINK_CLOSE in tail:  # checked every step: the tag ends at the newest token
                    self.closed_at[b] = length
                    continue
                if self.opened or self.started.get(b, False):
                    continue  # inside the thinking: stop sequences do not apply
            start = max(self.closed_at.get(b, 0), length - self.window)
            answer_tail = self.tok.decode(new[b, start:].tolist(), skip_special_tokens=False)
            if any(st in answer_tail for st in self.stops):
                done[b] = True
        return done


class HFBackend:
    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int, bf16: bool, progress: bool, label: str):
        self.model, self.tok, self.batch_size, self.bf16, self.progress = model, tokenizer, batch_size, bf16, progress
        self.label = label

    def describe(self) -> dict[str, Any]:
        return {"backend": "hf", "model": self.label}

    def generate(self, messages: list[list[dict[str, Any]]], s: Sampling) -> list[list[Output]]:
        from distill_lab.stages.evaluate.decode import generate, render

        texts = [render(self.tok, m) for m in messages]
        opened = bool(texts) and prompt_opens_thinking(texts[0])
        stopping = None
        if s.stop:
            from transformers import StoppingCriteriaList

            def stopping(prompt_len: int) -> Any:
                return StoppingCriteriaList([StopAfterThinking(self.tok, tuple(s.stop), prompt_len, opened)])

        kw: dict[str, Any] = dict(max_new_tokens=s.max_new_tokens, batch_size=self.batch_size, bf16=self.bf16,
                                  progress=self.progress, stopping=stopping, desc=f"{self.label} x{s.n}")
        if not s.greedy:
            kw.update(num_return_sequences=s.n, do_sample=True, temperature=s.temperature, top_p=s.top_p, seed=s.seed)
        gens = generate(self.model, self.tok, texts, **kw)
        out = []
        for gs in gens:
            row = []
            for g in gs:
                text = with_thinking_tags(g.text, opened)
                text, cut = cut_at_stop(text, s.stop, opened=opened)
                n_tok = len(self.tok(text, add_special_tokens=False)["input_ids"]) if cut else g.n_tokens
                row.append(Output(text, n_tok, truncated=g.runaway and not cut))
            out.append(row)
        return out


# ------------------------------------------------------------------------------- openai_compat
class BackendError(RuntimeError):
    """The server refused or kept failing a request; the message names the URL and the model."""


class OpenAICompatBackend:
    name = "openai_compat"

    def __init__(self, cfg: Any, model: str, *, progress: bool = False):
        self.cfg, self.model, self.progress = cfg, model, progress
        key = "EMPTY"  # vLLM / SGLang without --api-key take any key
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env, "").strip()
            if not key:
                raise BackendError(f"eval.backend.api_key_env: the environment variable {cfg.api_key_env} is not set")
        self._key = key
        self.sent = 0
        self.retries = 0

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai_compat", "model": self.model, "base_url": self.cfg.base_url}

    def params(self, messages: list[dict[str, Any]], s: Sampling, sample_index: int) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": s.max_new_tokens,
                             "temperature": 0.0 if s.greedy else s.temperature, "n": 1}
        if not s.greedy:
            p["top_p"] = s.top_p
            p["seed"] = s.seed + sample_index
        p["extra_body"] = {"chat_template_kwargs": {"enable_thinking": bool(self.cfg.enable_thinking)}}
        return p

    def generate(self, messages: list[list[dict[str, Any]]], s: Sampling) -> list[list[Output]]:
        return asyncio.run(self._generate(messages, s))

    async def _generate(self, messages: list[list[dict[str, Any]]], s: Sampling) -> list[list[Output]]:
        import openai

        from distill_lab.teachers.retry import Backoff

        c = self.cfg
        client = openai.AsyncOpenAI(api_key=self._key, base_url=c.base_url, max_retries=0, timeout=c.timeout_s)
        blocked_until = [0.0]  # a 429's retry-after holds every new request of this client
        backoff = Backoff(base_s=c.retry_base_s, cap_s=c.retry_cap_s)
        n = 1 if s.greedy else s.n
        results: list[list[Output | None]] = [[None] * n for _ in messages]
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        for i in range(len(messages)):
            for k in range(n):
                queue.put_nowait((i, k))
        failure: list[BaseException] = []

        async def one(i: int, k: int) -> None:
            from distill_lab.teachers.base import TeacherError
            from distill_lab.teachers.openai_compat import classify_status_error, parse_completion

            attempt = 0
            while True:
                attempt += 1
                wait = blocked_until[0] - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.sent += 1
                try:
                    try:
                        resp = await client.chat.completions.create(**self.params(messages[i], s, k))
                    except openai.APIStatusError as e:
                        raise classify_status_error(e) from e
                    except openai.APIConnectionError as e:
                        raise TeacherError(f"connection: {type(e).__name__}: {e}", kind="retryable") from e
                    except openai.APIResponseValidationError as e:
                        raise TeacherError(f"unreadable reply: {e}", kind="retryable") from e
                    if not resp.choices:
                        raise TeacherError("unreadable reply: no choices", kind="retryable")
                except TeacherError as e:
                    if e.kind == "retryable" and attempt <= c.max_retries:
                        self.retries += 1
                        if e.retry_after:
                            blocked_until[0] = max(blocked_until[0], time.monotonic() + e.retry_after)
                        await asyncio.sleep(backoff.delay(attempt, e.retry_after))
                        continue
                    why = "retries exhausted" if e.kind == "retryable" else "not retryable"
                    raise BackendError(f"eval.backend: {c.base_url} model {self.model!r}: {e.status or ''} {e} "
                                       f"({why} after {attempt} attempt(s))") from e
                reply = parse_completion(resp.model_dump(), getattr(resp, "_request_id", None))
                cut_in_thinking = reply.stop_reason == "max_tokens" and not reply.content
                if reply.reasoning and not reply.extra.get("thinking_unclosed") and not cut_in_thinking:
                    text = f"{THINK_OPEN}\n{reply.reasoning}\n{THINK_CLOSE}\n\n{reply.content}"
                elif reply.reasoning:  # never closed (or cut by the budget before any answer): no answer
                    text = f"{THINK_OPEN}\n{reply.reasoning}"
                else:
                    text = reply.content
                text, cut = cut_at_stop(text, s.stop)
                truncated = reply.stop_reason == "max_tokens" and not cut
                results[i][k] = Output(text, reply.usage.get("output_tokens"), truncated)
                return

        async def worker() -> None:
            while not failure:
                try:
                    i, k = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    await one(i, k)
                except BaseException as e:  # stop the others; re-raised below
                    failure.append(e)
                    return

        t0 = time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(min(c.concurrency, max(1, queue.qsize())))))
        finally:
            await client.close()
        if failure:
            raise failure[0]
        log.info("eval: %s via %s: %d requests (%d retries) in %.1fs", self.model, c.base_url, self.sent,
                 self.retries, time.perf_counter() - t0)
        return [[o for o in row if o is not None] for row in results]
