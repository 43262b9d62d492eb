"""The teacher interface: messages in, reasoning + answer + usage + cost out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from distill_lab.tasks.base import Problem
from distill_lab.teachers.config import TeacherConfig


@dataclass
class TeacherReply:
    content: str  # the final answer text
    reasoning: str | None  # the thinking text, without tags (None when the teacher gave none)
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # input/output/cache tokens as billed
    request_id: str | None = None
    cost_usd: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. redacted_thinking count


class TeacherError(Exception):
    """A request that did not give a reply.

    ``kind``: ``retryable`` (429, 529, 5xx, timeouts, dropped connections, unreadable replies),
    ``fatal`` (400/401/403/404...: retrying cannot help) or ``spend_limit`` (the account's spend cap:
    the whole run must stop).
    ``cause`` names what happened when there is no HTTP status: ``connect`` (nothing answered at the
    base URL: refused, DNS), ``timeout``, ``dropped`` (the connection was lost mid-request) or
    ``malformed`` (a reply that could not be read); failure records count them apart.
    """

    def __init__(self, message: str, *, kind: str = "retryable", status: int | None = None,
                 retry_after: float | None = None, request_id: str | None = None, cause: str | None = None):
        assert kind in ("retryable", "fatal", "spend_limit"), kind
        super().__init__(message)
        self.kind, self.status, self.retry_after, self.request_id = kind, status, retry_after, request_id
        self.cause = cause

    @property
    def label(self) -> str:
        """The failure class: the HTTP status, else the cause (``connect``, ``timeout``, ``dropped``, ``malformed``)."""
        return str(self.status or self.cause or "error")

    @property
    def reason(self) -> str:
        return f"{self.label}: {self}"


class Teacher(ABC):
    def __init__(self, cfg: TeacherConfig):
        self.cfg = cfg

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this teacher's samples (stored as the row's ``teacher`` field, hashed into ``id``)."""
        c = self.cfg
        fp: dict[str, Any] = {"provider": c.provider, "model": c.model, "effort": c.effort_name,
                              "temperature": c.temperature, "top_p": c.top_p, "max_tokens": c.max_tokens}
        if c.provider == "anthropic":
            fp["budget_tokens"] = c.effort_budgets.get(c.effort_name)
            fp["thinking_mode"] = c.thinking_mode
        else:
            fp["budget_tokens"] = None
        return fp

    def estimate_input_tokens(self, problem: Problem) -> int:
        """A typical count of the prompt's input tokens (4 characters a token), for the rate limits.

        The spend cap takes ``worst_input_tokens`` instead: twice this, plus a margin.
        """
        chars = sum(len(m.get("content") or "") for m in problem.messages()) + len(self.cfg.system_prompt or "")
        return chars // 4 + 8

    def worst_input_tokens(self, problem: Problem) -> int:
        """An upper bound on the prompt's input tokens (for the spend cap's worst case)."""
        return 2 * self.estimate_input_tokens(problem) + 64

    @abstractmethod
    async def complete(self, problem: Problem, sample_index: int) -> TeacherReply:
        """One sample of the teacher on ``problem.messages()``."""

    def endpoint(self) -> str:
        """Where requests go, for messages (the client's base URL, or the provider name)."""
        client = getattr(self, "client", None)
        return str(getattr(client, "base_url", None) or self.cfg.base_url or self.cfg.provider)

    async def preflight(self) -> None:  # noqa: B027 (optional hook)
        """Free checks before the first paid request (key accepted, model takes these settings)."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""
