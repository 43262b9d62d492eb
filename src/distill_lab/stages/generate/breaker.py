"""When one failed request means every request will fail: stop the run instead of sending them all.

Per-request retries are right for a 429, a 529 or a dropped connection. They are wrong when the cause is
the same for every request: a refused key (401/403), a wrong URL or model (404/405), nothing listening at
the base URL, or a parameter the API refuses for every prompt (the same 400 again and again). Sending
the rest would only repeat the failure (and a fake success: an empty dataset with exit 0). The breaker
sees every failed attempt and returns one line naming the cause and the fix when the run must stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from distill_lab.teachers.base import TeacherError
from distill_lab.teachers.config import TeacherConfig

# consecutive failures with no success in the run, before a repeated cause counts as run-wide
STREAK = 3


@dataclass
class Breaker:
    cfg: TeacherConfig
    url: str  # where requests go, for the message
    n_items: int = STREAK  # fewer items than STREAK: all of them failing is enough
    successes: int = 0
    streak: list[str] = field(default_factory=list)

    def ok(self) -> None:
        self.successes += 1
        self.streak.clear()

    def _need(self) -> int:
        return max(1, min(STREAK, self.n_items))

    def failed(self, err: TeacherError) -> str | None:
        """Record a failed attempt; a message (cause; fix) when the whole run must stop, else None."""
        c = self.cfg
        env = c.api_key_env or "the API key variable"
        if err.status in (401, 403):
            return (f"the API refused the key in {env} ({err.status} {err}) at {self.url}; "
                    f"set a valid key in {env} (teacher.api_key_env) and re-run")
        if err.status in (404, 405):
            hint = ("the SDK appends /v1/messages itself, so teacher.base_url must not end in /v1"
                    if c.provider == "anthropic" else "teacher.base_url must end in /v1 for chat/completions")
            return (f"{self.url} answered {err.status} ({err}): teacher.model={c.model!r} or "
                    f"teacher.base_url={c.base_url!r} is wrong ({hint}); fix it and re-run")
        if self.successes:
            return None
        sig = f"{err.label}:{err}" if err.kind == "fatal" else err.label if err.cause == "connect" else None
        if sig is None:
            self.streak.clear()
            return None
        self.streak.append(sig)
        if len(self.streak) < self._need() or len(set(self.streak[-self._need():])) != 1:
            return None
        if err.cause == "connect":
            return (f"nothing answers at {self.url} ({err}); start the server or fix teacher.base_url="
                    f"{c.base_url!r}, then re-run")
        return (f"the API refused the first {self._need()} requests with the same error ({err.label} {err}); "
                "fix the teacher settings it names and re-run")
