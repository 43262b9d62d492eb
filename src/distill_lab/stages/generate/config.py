"""Config of the generate stage: the ``recipe`` group (what to ask) and ``generate`` (how to ask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from distill_lab.errors import check as _check
from distill_lab.vocab import CATEGORIES, SPLITS


@dataclass
class FamilySpec:
    """A built-in task family in a recipe mix (``distill_lab.tasks``; ``params`` go to its constructor)."""

    name: str = MISSING
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.weight > 0, f"recipe.families[{self.name}].weight", "must be > 0")
        if self.name != MISSING:
            _check(bool(self.name), "recipe.families.name", "must not be empty")


@dataclass
class SourceSpec:
    """An external prompt source or teacher dataset (see ``stages/generate/sources.py``).

    ``kind``: jsonl | parquet | hf (prompts, optional reference) or teacher_dataset (rows with the
    teacher's answer: ``messages`` whose assistant turn has ``reasoning_content``, ``thinking`` or
    ``reasoning``, or ``<think>`` in its content; trained on directly, no generation).
    """

    kind: str = MISSING  # jsonl | parquet | hf | teacher_dataset
    path: str = MISSING  # a file, a folder saved with save_to_disk / holding data files, or a hub id
    name: Optional[str] = None  # shown in stats and the card; default: the file name
    format: Optional[str] = None  # teacher_dataset files: jsonl | parquet | hf (default: from the path)
    weight: float = 1.0
    prompt_field: str = "prompt"  # dotted paths allowed (``question.text``)
    reference_field: Optional[str] = "reference"
    messages_field: str = "messages"
    split_field: Optional[str] = "split"  # a row's own split, when it has this field
    split: Optional[str] = None  # every row goes to this split (default: split_field, else train)
    hf_split: Optional[str] = None  # which split of a DatasetDict to read (default: all)
    category: str = "knowledge"
    task: Optional[str] = None  # a registered family that verifies the answers (default: freeform)
    shuffle: bool = True  # order rows by the recipe seed (a smaller size stays a prefix)
    limit: Optional[int] = None  # read at most this many rows

    def __post_init__(self) -> None:
        _check(self.kind in ("jsonl", "parquet", "hf", "teacher_dataset"), "recipe.sources.kind",
               f"unknown source kind {self.kind!r}; expected jsonl, parquet, hf or teacher_dataset")
        _check(self.weight > 0, "recipe.sources.weight", "must be > 0")
        _check(self.format in (None, "jsonl", "parquet", "hf"), "recipe.sources.format",
               f"unknown format {self.format!r}; expected jsonl, parquet or hf")
        _check(self.split is None or self.split in SPLITS, "recipe.sources.split",
               f"unknown split {self.split!r}; expected train, test or ood")
        _check(self.category in CATEGORIES,
               "recipe.sources.category", f"unknown category {self.category!r}")
        _check(self.limit is None or self.limit >= 1, "recipe.sources.limit", "must be >= 1 or null")


@dataclass
class RecipeConfig:
    name: str = "arithmetic"
    families: list[FamilySpec] = field(default_factory=lambda: [FamilySpec(name="addition")])
    sources: list[SourceSpec] = field(default_factory=list)
    size: int = 400  # train prompts
    test_size: int = 40  # held-out prompts, same distribution
    ood_size: int = 40  # held-out prompts, beyond the distribution
    seed: int = 0  # the prompt pool depends on this seed only (not on teacher or effort)
    verify: bool = True
    strict: bool = True  # a bad source row stops the run (else it is skipped and counted)
    dedup: bool = True  # exact and near-duplicate removal within each split
    near_dup_threshold: float = 0.8  # Jaccard similarity of word 3-shingles counted as a near-duplicate
    decontaminate: bool = True  # train never shares a prompt or an n-gram with test/ood
    ngram: int = 8  # n-gram size (words) for decontamination
    shortfall: str = "shrink"  # a member runs short: shrink (keep the mix, smaller total) | fill | error
    # training dose per family: "rows" gives every family and source the same number of train rows (the
    # weights then set only the held-out mix); null follows the weights in train too
    match_dose: Optional[str] = None
    # share of train rows from the edge-case families (category edge_case), the rest split as the other
    # members' train weights say; null = no override. Held-out splits do not depend on it (a sweep over it
    # evaluates the same prompts, edge cases paired with their unannounced controls at every share)
    edge_case_share: Optional[float] = None
    # mixed-effort distillation (stages/generate/effort_mix.py): the teacher at several efforts over this one
    # pool, mixed by share on the train split, e.g. low@0.5+high@0.5 (":" for "@" and "," for "+" also read);
    # null: every row at teacher.effort. Held-out prompts are answered at the mix's most detailed effort.
    effort_mix: Optional[str] = None
    effort_assign: str = "random"  # random (seeded, exact shares per family) | difficulty (easy -> low effort)
    effort_mix_duplicate: bool = False  # true: every train prompt at every effort of the mix (equal shares)

    def __post_init__(self) -> None:
        _check(self.size >= 1, "recipe.size", f"must be >= 1, got {self.size}")
        _check(self.test_size >= 0, "recipe.test_size", "must be >= 0")
        _check(self.ood_size >= 0, "recipe.ood_size", "must be >= 0")
        _check(bool(self.families) or bool(self.sources), "recipe.families",
               "a recipe needs at least one family or source")
        _check(self.ngram >= 1, "recipe.ngram", "must be >= 1")
        _check(0 < self.near_dup_threshold <= 1, "recipe.near_dup_threshold", "must be in (0, 1]")
        _check(self.shortfall in ("shrink", "fill", "error"), "recipe.shortfall",
               f"must be shrink, fill or error, got {self.shortfall!r}")
        _check(self.match_dose in (None, "rows"), "recipe.match_dose",
               f"must be rows or null, got {self.match_dose!r}")
        _check(self.edge_case_share is None or 0 <= self.edge_case_share <= 1, "recipe.edge_case_share",
               f"must be in [0, 1] or null, got {self.edge_case_share}")
        from distill_lab.stages.generate.effort_mix_spec import check_recipe_mix

        check_recipe_mix(self.effort_mix, self.effort_assign, self.effort_mix_duplicate)


@dataclass
class GenerateConfig:
    output_dir: Optional[str] = None  # default: <run dir>/dataset
    samples_per_prompt: int = 1
    splits: list[str] = field(default_factory=lambda: list(SPLITS))
    concurrency: int = 16
    requests_per_minute: Optional[float] = None
    input_tokens_per_minute: Optional[float] = None
    output_tokens_per_minute: Optional[float] = None
    # cap on the dataset folder's teacher spend: a re-run counts what its journal already cost (every teacher
    # setting in it); each request is admitted only if its worst case (max_tokens out) still fits, so the cap
    # is never crossed; a cap that cannot buy one row of every split is refused up front
    max_cost_usd: Optional[float] = None
    shard_rows: int = 1000
    progress: bool = True
    progress_every_s: float = 10.0  # without a terminal (Slurm, CI): a progress line in the log this often
    # retries (teacher.max_retries is the count): exponential backoff with jitter, >= retry-after
    retry_base_s: float = 1.0
    retry_cap_s: float = 60.0
    # the journal flushes every row (safe against kill -9) and fsyncs at most this often (power loss
    # loses at most this window); 0 fsyncs every row
    fsync_interval_s: float = 0.5
    # quality filters; rejected rows are kept in the `rejected` split with their reason
    filters: list[str] = field(default_factory=lambda: ["max_tokens", "empty_answer", "unclosed_thinking",
                                                        "empty_thinking", "unverified", "duplicate"])
    # splits whose caught rows move to `rejected`; held-out rows are only flagged (reject_reason), since
    # eval measures the teacher on them too
    filter_splits: list[str] = field(default_factory=lambda: ["train"])
    batch_max_rounds: int = 3  # batch mode: resubmissions of errored/expired requests
    # a dataset folder holding rows of these prompts from another teacher setting (another effort, model...):
    # false refuses to buy them again beside those; true adds the new setting's rows to the same folder
    mix_teacher_settings: bool = False

    def __post_init__(self) -> None:
        from distill_lab.stages.generate.filters import FILTERS

        for f in self.filters:
            _check(f in FILTERS, "generate.filters", f"unknown filter {f!r}; known: {list(FILTERS)}")
        _check(self.retry_base_s > 0, "generate.retry_base_s", "must be > 0")
        _check(self.retry_cap_s >= self.retry_base_s, "generate.retry_cap_s", "must be >= generate.retry_base_s")
        _check(self.shard_rows >= 1, "generate.shard_rows", "must be >= 1")
        _check(self.fsync_interval_s >= 0, "generate.fsync_interval_s", "must be >= 0")
        _check(self.progress_every_s >= 0, "generate.progress_every_s", "must be >= 0")
        _check(self.batch_max_rounds >= 1, "generate.batch_max_rounds", "must be >= 1")
        for sp in self.filter_splits:
            _check(sp in SPLITS, "generate.filter_splits", f"unknown split {sp!r}")
        _check(self.samples_per_prompt >= 1, "generate.samples_per_prompt", "must be >= 1")
        _check(self.concurrency >= 1, "generate.concurrency", "must be >= 1")
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute"):
            v = getattr(self, name)
            _check(v is None or v > 0, f"generate.{name}", "must be > 0 (or null for no limit)")
        _check(self.max_cost_usd is None or self.max_cost_usd >= 0, "generate.max_cost_usd", "must be >= 0")
        for s in self.splits:
            _check(s in SPLITS, "generate.splits", f"unknown split {s!r}")
