"""What a run prints: one line per event, third-party noise filtered here and nowhere else.

A stage's console (and its Hydra job log) should tell the story: the stages, their progress at intervals,
what was chosen (precision, backend, budget) and the result. Libraries add lines that tell none of it;
this module is the one place that keeps them out, and ``DISTILL_LAB_VERBOSE=1`` lets them all back in.

- **One handler per logger.** Hydra gives the root logger a console handler (and the job log file);
  Lightning, datasets, huggingface_hub and torchmetrics add console handlers of their own that also
  propagate to root, so each of their lines printed twice; transformers' and Lightning's own handlers
  (no propagation) kept theirs out of the job log. ``tidy_handlers`` removes those console handlers so
  every record goes through root's, once: at ``configure`` and again right after such a library is
  first imported (several are imported only inside a stage).
- **Noise** (``NOISY_LOG_LINES``, ``NOISY_WARNINGS``, ``QUIET_LOGGERS``): one line per HTTP request from the
  teacher SDKs' HTTP clients; Lightning's "Tip" advertisements (litlogger,
  litmodels); its ``srun`` hint outside a Slurm job (inside one it may be right, and stays); the
  ``LeafSpec`` FutureWarning that Lightning's pytree helper triggers in torch at every step; transformers'
  ``is_gradient_checkpointing`` deprecation (and ``TrainingArguments``' ``gradient_checkpointing``, in the rl
  stage); bitsandbytes' note on each import that the optional
  ``kernels`` package is missing (or, with it installed and the hub offline, that package's note that it skips
  the hub's trust check); Lightning's warning that a mid-epoch resume is unreliable (ours is exact:
  batches are a function of the step). ``DISTILL_LAB_VERBOSE=1`` keeps every one of them.
- **Progress off a terminal.** Bars redraw one line with carriage returns: in a file (Slurm, CI, a pipe)
  they arrive glued together. When stdout or stderr is not a terminal the library bars (transformers'
  weight loading, datasets, huggingface_hub) are off and loops report through ``ProgressLog``: plain log
  lines at a steady cadence (the first update, then one per ``every_s`` seconds, and the last).

Entry points call ``quiet_warnings`` before anything is imported and ``configure`` once Hydra has set up
logging (``app.py``). Written here rather than taken from a library: the noise is these libraries'
specific lines, and no logging package knows them.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import time
import warnings
from typing import Any

VERBOSE_ENV = "DISTILL_LAB_VERBOSE"

# (logger name prefix, message pattern): records dropped unless verbose
NOISY_LOG_LINES: tuple[tuple[str, str], ...] = (
    ("lightning", r"Tip: For seamless"),  # litlogger / litmodels advertisements
    ("bitsandbytes", r"kernels-community|pip install kernels"),  # the optional `kernels` package, per import
    # with `kernels` installed (transformers >= 5.25 brings it), offline: its hub lookup for bitsandbytes' kernel
    ("kernels", r"Skipping publisher trust check"),
)
# (category, message pattern, only outside a Slurm job): warnings ignored unless verbose
NOISY_WARNINGS: tuple[tuple[type[Warning], str, bool], ...] = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated", False),
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", False),
    (FutureWarning, r"^`gradient_checkpointing` is deprecated", False),  # TrainingArguments (the rl stage's TRL config)
    (Warning, r"The `srun` command is available on your system but is not used", True),
    # our batches are a function of the step (stages/train/datamodule.py), so a mid-epoch resume is exact
    (Warning, r"You're resuming from a checkpoint that ended before the epoch ended", False),
)
# loggers that write one INFO line per HTTP request (the teacher SDKs' HTTP libraries; 467 of a run's 489
# lines once): kept at WARNING unless verbose
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "anthropic", "openai")
# libraries that add a console handler of their own when imported (some without propagation)
ADDS_HANDLERS = ("lightning", "transformers", "datasets", "huggingface_hub", "torchmetrics")
_OWN_ROOTS = ("lightning", "lightning.pytorch", "lightning.fabric", "transformers")  # no propagation: rerouted


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def interactive() -> bool:
    """Are both output streams a terminal (bars redraw in place) rather than a file or a pipe?"""
    return all(getattr(s, "isatty", lambda: False)() for s in (sys.stdout, sys.stderr))


# ----------------------------------------------------------------------------------------- noise
def quiet_warnings() -> None:
    """Ignore ``NOISY_WARNINGS`` (unless verbose); safe to call more than once."""
    if verbose():
        return
    on_slurm = "SLURM_JOB_ID" in os.environ
    for category, pattern, off_slurm_only in NOISY_WARNINGS:
        if not (off_slurm_only and on_slurm):
            warnings.filterwarnings("ignore", message=pattern, category=category)


def quiet_loggers() -> None:
    """``QUIET_LOGGERS`` to warnings (unless verbose)."""
    if verbose():
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class NoiseFilter(logging.Filter):
    """Drops the records of ``NOISY_LOG_LINES``."""

    def __init__(self) -> None:
        super().__init__()
        self.rules = [(prefix, re.compile(pattern)) for prefix, pattern in NOISY_LOG_LINES]

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        for prefix, pattern in self.rules:
            if (name == prefix or name.startswith(prefix + ".")) and pattern.search(record.getMessage()):
                return False
        return True


def _is_console(h: logging.Handler) -> bool:
    return (isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and getattr(h, "stream", None) in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))


def tidy_handlers() -> None:
    """One handler per record: drop libraries' own console handlers where root has one (see above).
    torch's loggers are left to torch (``TORCH_LOGS``)."""
    if not any(_is_console(h) for h in logging.root.handlers):
        return
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if not isinstance(lg, logging.Logger) or name.split(".")[0] == "torch":
            continue
        own = [h for h in lg.handlers if _is_console(h)]
        if own and (lg.propagate or name in _OWN_ROOTS):
            for h in own:
                lg.removeHandler(h)
            lg.propagate = True


def _library_bars_off(name: str) -> None:
    """Off a terminal: no progress bars from the Hugging Face libraries (their lines glue together)."""
    if interactive():
        return
    if name == "transformers":
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    elif name == "datasets":
        import datasets

        datasets.disable_progress_bars()
    elif name == "huggingface_hub":
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def _after_import(name: str) -> None:
    tidy_handlers()
    _library_bars_off(name)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``_after_import`` once one of ``ADDS_HANDLERS`` has been imported (the other finders find it)."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(self, name: str, path: Any = None, target: Any = None):
        if name not in ADDS_HANDLERS or name in self._busy:
            return None
        self._busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.discard(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        inner = loader.exec_module

        def exec_module(module):
            inner(module)
            _after_import(name)

        loader.exec_module = exec_module
        return spec


def configure() -> None:
    """Once logging is set up (Hydra's job logging): one handler per logger, the noise filtered from
    root's handlers (unless verbose), library bars off a terminal; also for libraries imported later."""
    quiet_warnings()
    quiet_loggers()
    if not verbose():
        for h in logging.root.handlers:
            if not any(isinstance(f, NoiseFilter) for f in h.filters):
                h.addFilter(NoiseFilter())
    for name in ADDS_HANDLERS:
        if name in sys.modules:
            _after_import(name)
    if not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
    tidy_handlers()


# -------------------------------------------------------------------------------------- progress
def _duration(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


class ProgressLog:
    """Progress of a loop as plain log lines at a steady cadence: the first update, then at most one
    every ``every_s`` seconds, and the last (``done == total``)."""

    def __init__(self, logger: logging.Logger, what: str, total: int, unit: str, every_s: float = 30.0,
                 start: int = 0, clock=time.monotonic) -> None:
        self.log, self.what, self.total, self.unit, self.every_s = logger, what, total, unit, every_s
        self.clock = clock
        self.t0 = self._last = clock()
        self.start = self.done = start
        self.lines = 0

    def update(self, n: int = 1, extra: str = "") -> None:
        self.set(self.done + n, extra)

    def set(self, done: int, extra: str = "") -> None:
        self.done = done
        now = self.clock()
        if self.lines and done < self.total and now - self._last < self.every_s:
            return
        self._last = now
        self.lines += 1
        elapsed = now - self.t0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * done / self.total if self.total else 100.0
        left = f", ~{_duration((self.total - done) / rate)} left" if 0 < done < self.total and rate > 0 else ""
        self.log.info("%s %d/%d %s (%.0f%%)%s; %s elapsed, %.2f %s/s%s", self.what, done, self.total, self.unit,
                      pct, f": {extra}" if extra else "", _duration(elapsed), rate, self.unit, left)

    def close(self) -> None:
        pass


def progress(logger: logging.Logger, what: str, total: int, unit: str, enabled: bool = True,
             every_s: float = 30.0):
    """A bar on a terminal (tqdm), ``ProgressLog`` lines elsewhere; either has ``update(n)`` and ``close()``."""
    if enabled and interactive():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=what, unit=f" {unit}", leave=False)
    if not enabled:
        return _NoProgress()
    return ProgressLog(logger, what, total, unit, every_s=every_s)


class _NoProgress:
    def update(self, n: int = 1, extra: str = "") -> None:
        pass

    def close(self) -> None:
        pass
