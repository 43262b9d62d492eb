"""Eval metrics (``metrics.json``): the record the eval stage writes and the reports read, typed and versioned.

Schema (version 1)::

  {"schema_version": 1,
   "eval": {...the eval config...}, "dataset_dir": str|null, "adapter_dir": str|null,
   "student": str, "prompts": {split: n},
   "models": {MODEL: {                         # MODEL in base | student | teacher
       "overall": BLOCK,
       "splits": {SPLIT: BLOCK + {"categories": {CATEGORY: BLOCK}, "families": {FAMILY: BLOCK}}},
       "categories": {CATEGORY: BLOCK},        # all splits together
       "families": {FAMILY: BLOCK}}},
   "retention": {MODEL: CMP},                  # MODEL / teacher on accuracy, for base and student
   "score_retention": {MODEL: CMP},            # the same on the families' graded scores (style!)
   "gain": CMP | null,                         # student - base (null unless both were evaluated)
   "budgets": {SPLIT: {"max_new_tokens", "source": auto|explicit|no teacher answers, "teacher_longest",
                       "teacher_longest_prompt", "teacher_answers", "margin", "below_teacher",
                       "teacher_cut_share", "teacher_truncated"}},  # students/budget.SplitBudget; absent
                                               # in older files (teacher_truncated: answers the API cut)
   "truncation_allowed": bool,                 # eval.allow_truncation (reports flag cut splits in red)
   ...}                                        # further keys (timings_s, teacher_live) kept as they are

  BLOCK = {"n": prompts, "correct": greedy correct, "accuracy": float, "accuracy_ci": [lo, hi] (Wilson),
           "n_samples": samples per prompt, "pass_at_k": {"k": float}, "majority_accuracy": float,
           "score": mean of the family's graded score in [0, 1] (= accuracy for pass/fail families),
           "format": {"think_closed", "has_thinking", "answer_parsed", "compliant"} (shares),
           "lengths": {"output_tokens", "thinking_chars", "answer_chars"} (means of greedy outputs),
           "runaway_share" (= truncated_share, kept for older readers),
           and one value per ``SAMPLE_METRICS`` entry below}
  CMP = {"overall": STAT, "categories": {CATEGORY: STAT},
         "splits": {SPLIT: {"all": STAT, "categories": {CATEGORY: STAT}}}}
  STAT = {"value": float|null, "ci": [lo, hi]|null (paired percentile bootstrap over prompts),
          "n": paired prompts, "a_accuracy": float, "b_accuracy": float}

A new per-output metric is one ``SampleMetric`` in ``SAMPLE_METRICS``: the eval stage computes it for
every block and the report shows it as a column; older files without it show "–".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.artifacts.jsonio import read_json, write_json
from distill_lab.vocab import SPLITS

SCHEMA_VERSION = 1
FILE = "metrics.json"
MODELS = ("base", "student", "teacher")


class MetricsError(ValueError):
    """A metrics file that cannot be read as this schema; the message names the file."""


@dataclass(frozen=True)
class SampleMetric:
    """A per-block figure over the greedy outputs (``samples.jsonl`` records) of a model on a group of prompts."""

    name: str  # its key in a BLOCK
    label: str  # the report's column header
    kind: str  # share (a fraction of outputs, shown in %) | mean (a number) | ratio (in [0, 1], two decimals)
    value: Callable[[dict[str, Any]], Any]  # one record -> a bool (share) or a number; None is left out

    def compute(self, greedy: list[dict[str, Any]]) -> float | None:
        vals = [self.value(r) for r in greedy]
        vals = [float(v) for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None

    def cell(self, v: float | None) -> str:
        if v is None:
            return "–"
        return f"{100 * v:.1f}%" if self.kind == "share" else f"{v:.2f}" if self.kind == "ratio" else f"{v:.0f}"


SAMPLE_METRICS: tuple[SampleMetric, ...] = (
    # cut by the token budget before end of turn (wrong, never parsed); older records: their runaway flag
    SampleMetric("truncated_share", "truncated", "share", lambda r: bool(r.get("truncated", r.get("runaway")))),
    # the think block never closed (cut, or an end of turn inside the thinking): no answer to read
    SampleMetric("unclosed_thinking_share", "unclosed thinking", "share",
                 lambda r: bool(r.get("unclosed_thinking", r.get("think_unclosed")))),
    SampleMetric("style_similarity", "style sim.", "ratio", lambda r: r.get("style_similarity")),
    # thinking that never reached an answer (closed or not): the failure a token budget or a runaway hides
    SampleMetric("empty_answer_share", "empty answer", "share",
                 lambda r: None if r.get("answer_chars") is None else r["answer_chars"] == 0),
)


@dataclass
class EvalMetrics:
    models: dict[str, dict[str, Any]]
    retention: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_retention: dict[str, dict[str, Any]] = field(default_factory=dict)
    gain: dict[str, Any] | None = None
    student: str = ""
    dataset_dir: str | None = None
    adapter_dir: str | None = None
    prompts: dict[str, int] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys outside the schema (timings_s, teacher_live, ...)
    schema_version: int = SCHEMA_VERSION

    _FIELDS = ("models", "retention", "score_retention", "gain", "student", "dataset_dir", "adapter_dir",
               "prompts", "eval", "schema_version")

    # ------------------------------------------------------------------------------------- io
    def to_json(self) -> dict[str, Any]:
        d = {"schema_version": self.schema_version, "eval": self.eval, "dataset_dir": self.dataset_dir,
             "adapter_dir": self.adapter_dir, "student": self.student, "prompts": self.prompts,
             "models": self.models, "retention": self.retention, "score_retention": self.score_retention,
             "gain": self.gain}
        return {**d, **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "metrics") -> EvalMetrics:
        if not isinstance(d, dict) or not isinstance(d.get("models"), dict):
            raise MetricsError(f"{where}: not a distill_lab eval metrics file (no 'models')")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise MetricsError(f"{where}: schema_version {d.get('schema_version')!r}; this version reads "
                               f"{SCHEMA_VERSION}")
        for model, m in d["models"].items():
            if not isinstance(m, dict) or not isinstance(m.get("splits"), dict):
                raise MetricsError(f"{where}: models.{model} has no 'splits'")
        known = {k: d[k] for k in cls._FIELDS if k in d and (d[k] is not None or k == "gain")}
        extra = {k: v for k, v in d.items() if k not in cls._FIELDS}
        known.setdefault("retention", {})
        known.setdefault("score_retention", {})
        return cls(**{k: v for k, v in known.items() if k in cls._FIELDS}, extra=extra)

    @classmethod
    def load(cls, path: str | Path) -> EvalMetrics:
        """``metrics.json`` of an eval run directory (or the file itself)."""
        p = Path(path)
        f = p / FILE if p.is_dir() else p
        if not f.is_file():
            raise FileNotFoundError(f"{p}: no {FILE} (not an eval run directory)")
        return cls.from_json(read_json(f, MetricsError), where=str(f))

    def write(self, run_dir: str | Path) -> Path:
        return write_json(Path(run_dir) / FILE, self.to_json())

    # -------------------------------------------------------------------------------- reading
    def model_names(self) -> list[str]:
        return [m for m in MODELS if m in self.models] + sorted(m for m in self.models if m not in MODELS)

    def splits(self) -> list[str]:
        found = {s for m in self.models.values() for s in m["splits"]}
        return sorted(found, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))

    def block(self, model: str, split: str | None = None, category: str | None = None) -> dict[str, Any] | None:
        """A model's BLOCK: overall, of one split, of one category (across splits), or of both."""
        m = self.models.get(model)
        if m is None:
            return None
        if split is None:
            return m["overall"] if category is None else m.get("categories", {}).get(category)
        b = m["splits"].get(split)
        if b is None or category is None:
            return b
        return b.get("categories", {}).get(category)

    def accuracy(self, model: str, split: str | None = None, category: str | None = None) -> float | None:
        b = self.block(model, split, category)
        return None if b is None else b.get("accuracy")

    def categories(self, split: str) -> list[str]:
        return sorted({c for m in self.models.values() for c in m["splits"].get(split, {}).get("categories", {})})

    @staticmethod
    def _stat(cmp: dict[str, Any] | None, split: str | None, category: str | None) -> dict[str, Any] | None:
        if not cmp:
            return None
        if split is None:
            return cmp.get("overall") if category is None else cmp.get("categories", {}).get(category)
        s = cmp.get("splits", {}).get(split)
        if s is None:
            return None
        return s.get("all") if category is None else s.get("categories", {}).get(category)

    def retention_stat(self, model: str, split: str | None = None, category: str | None = None,
                       *, score: bool = False) -> dict[str, Any] | None:
        """STAT of ``model`` / teacher (on accuracy, or on graded scores with ``score``)."""
        table = self.score_retention if score else self.retention
        return self._stat(table.get(model), split, category)

    def gain_stat(self, split: str | None = None, category: str | None = None) -> dict[str, Any] | None:
        return self._stat(self.gain, split, category)

    def retention_model(self) -> str:
        """The model whose retention a report shows: the distilled student, else the base model."""
        return "student" if "student" in self.retention else "base"
