"""A recipe's prompt pool: problems per split from its families and sources, with ablation hygiene.

``build_problems(recipe) -> RecipeResult(problems, imported_rows, stats)``.

Guarantees (each tested):
- The pool depends only on ``recipe`` (members, sizes, seed), never on the teacher or its effort, so
  every effort level of an ablation sees the same prompts.
- Nested subsets: slots are dealt to members by a house-monotone divisor rule (Sainte-Laguë), each
  member's items come from its own seeded stream, and held-out prompts are drawn first, so the train
  set of ``size=250`` is a prefix of the one of ``size=1000`` (same seed). Test/ood do not depend on
  ``size`` at all.
- Hygiene: held-out splits (ood, then test) are drawn first; a train prompt that equals a held-out
  prompt (after normalising) or shares a word n-gram (``recipe.ngram``) with one is dropped; exact
  and near-duplicates (Jaccard of word 3-shingles >= ``near_dup_threshold``) are dropped within and
  across splits. Every drop is counted in ``stats["filters"]``.
- Groups: problems a family emits one after the other with the same ``meta["pair_id"]`` (an edge case
  and its unannounced control) are one item: dealt, filtered and counted together (a pair takes two
  slots; one that no longer fits leaves the last slot to another member), so a pair is never split.
- Memorisation checks: a held-out problem with ``meta["in_train"]`` asks a train prompt on purpose;
  it is exempt from decontamination and ``stats["memorisation"]`` counts how many are in train.
- Dose: ``match_dose=rows`` deals train slots with equal weights (every member the same rows);
  ``edge_case_share=s`` gives the edge-case members a share ``s`` of the train slots (split by their
  weights) and the others ``1 - s``. Both change train only; ``stats["dose"]`` has the settings and
  ``stats["members"]`` each member's ``train_weight``.
- Shortfall: when a member runs out (a finite family or a short source), ``shortfall=shrink`` stops
  dealing at that slot, so the realised mix stays as asked and the total shrinks; ``fill`` lets the
  other members take the remaining slots; ``error`` raises. ``stats["shortfall"]`` reports it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from distill_lab.errors import ConfigError
from distill_lab.stages.generate.config import RecipeConfig
from distill_lab.stages.generate.decontam import NearDupIndex, NgramIndex, normalize
from distill_lab.stages.generate.sources import SourceItems, context_text, load_source
from distill_lab.tasks.base import Problem, TaskFamily, family_names, get_family
from distill_lab.tasks.train_deal import edge_share_weights
from distill_lab.vocab import HELD_OUT_SPLITS, SPLITS

log = logging.getLogger(__name__)
DRAW_ORDER = ("ood", "test", "train")  # held-out first: train is filtered against them


@dataclass
class RecipeResult:
    problems: dict[str, list[Problem]]  # split -> problems (for the teacher)
    imported_rows: list[dict[str, Any]] = field(default_factory=list)  # teacher rows from sources
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Item:
    prompt: str
    dtext: str  # compared for n-gram contamination and near-duplicates
    problem: Problem | None = None
    row: dict[str, Any] | None = None
    followers: list[Problem] = field(default_factory=list)  # the rest of a group (same pair_id)

    @property
    def size(self) -> int:
        return 1 + len(self.followers)

    @property
    def key(self) -> str:  # exact-duplicate key: teacher rows of one prompt may differ in their answer
        ans = self.row["messages"][-1]["content"] if self.row else ""
        return normalize(self.prompt) + "\x1f" + normalize(ans)


@dataclass
class _Member:
    label: str  # "family:addition" | "source:name"
    weight: float
    category: str
    items: dict[str, Iterator[_Item]]  # split -> item stream
    has: dict[str, bool]  # split -> whether the member takes part in that split


def deal(weights: list[float], n: int) -> list[int]:
    """Member index of each of ``n`` slots (Sainte-Laguë): counts follow ``weights`` and the first
    ``m`` slots of a longer deal are the deal of ``m`` (house-monotone, hence nested subsets)."""
    got = [0] * len(weights)
    out = []
    for _ in range(n):
        i = max(range(len(weights)), key=lambda j: (weights[j] / (2 * got[j] + 1), -j))
        got[i] += 1
        out.append(i)
    return out


def quota(total: int, weights: list[float]) -> list[int]:
    """How many of ``total`` slots each member gets under ``deal``."""
    c = Counter(deal(weights, total))
    return [c[i] for i in range(len(weights))]


def _family_stream(family: TaskFamily, split: str, rng: random.Random) -> Iterator[_Item]:
    """One item per problem, or per group of consecutive problems with the same ``pair_id``."""
    group: list[Problem] = []

    def item(ps: list[Problem]) -> _Item:
        return _Item(prompt=ps[0].prompt, dtext=family.decontam_text(ps[0]), problem=ps[0], followers=ps[1:])

    for p in family.stream(split, rng):
        pid = p.meta.get("pair_id")
        if group and (pid is None or group[0].meta.get("pair_id") != pid):
            yield item(group)
            group = []
        if pid is None:
            yield item([p])
        else:
            group.append(p)
    if group:
        yield item(group)


def _members(recipe: RecipeConfig) -> tuple[list[_Member], dict[str, SourceItems]]:
    known = family_names()
    members: list[_Member] = []
    names = Counter(f.name for f in recipe.families)
    for i, spec in enumerate(recipe.families):
        if spec.name not in known:
            raise ConfigError(f"recipe.families[{i}].name: unknown task family {spec.name!r}; known: {known}")
        try:
            family = get_family(spec.name, **dict(spec.params))
        except ValueError as e:
            raise ConfigError(f"recipe.families[{i}].params: {e}") from None
        # the stream's seed names the family (and its position only when a family appears twice)
        tag = spec.name if names[spec.name] == 1 else f"{spec.name}#{i}"
        items = {s: _family_stream(family, s, random.Random(f"{recipe.seed}/{tag}/{s}")) for s in SPLITS}
        members.append(_Member(f"family:{tag}", spec.weight, family.category, items, {s: True for s in SPLITS}))
    loaded: dict[str, SourceItems] = {}
    for i, spec in enumerate(recipe.sources):
        src = load_source(spec, index=i, seed=recipe.seed, strict=recipe.strict, verify=recipe.verify)
        label = f"source:{src.name}" if f"source:{src.name}" not in {m.label for m in members} else f"source:{src.name}#{i}"
        loaded[label] = src
        items: dict[str, Iterator[_Item]] = {}
        for s in SPLITS:
            if spec.kind == "teacher_dataset":
                items[s] = iter([_Item(prompt=context_text(r["messages"]), dtext=context_text(r["messages"]), row=r)
                                 for r in src.rows[s]])
            else:
                items[s] = iter([_Item(prompt=p.prompt, dtext=p.prompt, problem=p) for p in src.problems[s]])
        members.append(_Member(label, spec.weight, spec.category, items, {s: src.count(s) > 0 for s in SPLITS}))
    return members, loaded


class _Hygiene:
    """The running state of duplicate removal and decontamination across the splits drawn so far."""

    def __init__(self, recipe: RecipeConfig):
        self.recipe = recipe
        self.exact: dict[str, str] = {}  # normalised key -> split of first sight
        self.heldout_prompts: set[str] = set()
        self.heldout_ngrams = NgramIndex(recipe.ngram)
        self.near = {s: NearDupIndex(recipe.near_dup_threshold) for s in SPLITS}
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def _drop(self, reason: str, item: _Item) -> bool:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 3:
            ex.append(item.prompt[:120])
        return False

    def accept_group(self, split: str, item: _Item) -> bool:
        """A lone item, or a group: its followers share the lead's instance (``dtext``), so only the lead
        meets the near-duplicate and n-gram checks; the followers' prompts are checked and kept exactly."""
        r = self.recipe
        for f in item.followers:
            norm = normalize(f.prompt)
            if r.decontaminate and norm in self.heldout_prompts:
                return self._drop("cross_split_exact", item)
            if r.dedup and norm + "\x1f" in self.exact:
                return self._drop("exact_duplicate", item)
        if not self.accept(split, item):
            return False
        for f in item.followers:
            self.exact[normalize(f.prompt) + "\x1f"] = split
            if split != "train":
                self.heldout_prompts.add(normalize(f.prompt))
        return True

    def accept(self, split: str, item: _Item) -> bool:
        r = self.recipe
        norm = normalize(item.prompt)
        if split != "train" and item.problem is not None and item.problem.meta.get("in_train"):
            return True  # a memorisation check asks a train prompt on purpose (counted in stats)
        if split == "train" and r.decontaminate:
            if norm in self.heldout_prompts:
                return self._drop("decontam_exact", item)
            if self.heldout_ngrams.overlap(item.dtext) is not None:
                return self._drop(f"decontam_ngram{r.ngram}", item)
        if split != "train" and r.decontaminate and norm in self.heldout_prompts:
            return self._drop("cross_split_exact", item)  # the same prompt in test and ood
        key = item.key
        if r.dedup and key in self.exact:
            return self._drop("exact_duplicate", item)
        if r.dedup and self.near[split].find(item.dtext) is not None:
            return self._drop("near_duplicate", item)
        self.exact[key] = split
        if r.dedup:
            self.near[split].add(item.dtext)
        if split != "train":
            self.heldout_prompts.add(norm)
            self.heldout_ngrams.add(item.dtext)
        return True


def train_weights(members: list[_Member], recipe: RecipeConfig) -> list[float]:
    """The members' weights in the train deal: their own, equal ones (``match_dose=rows``), then the
    edge-case members rescaled to ``edge_case_share`` of the total and the others to the rest."""
    w = [1.0 if recipe.match_dose == "rows" else m.weight for m in members]
    share = recipe.edge_case_share
    if share is None:
        return w
    edge = [i for i, m in enumerate(members) if m.category == "edge_case"]
    other = [i for i in range(len(members)) if i not in edge]
    if share > 0 and not edge:
        raise ConfigError(f"recipe.edge_case_share={share}: no family or source of the recipe is in category "
                          "edge_case (add one, e.g. edge_checks, or set recipe.edge_case_share=null)")
    if share < 1 and not other:
        raise ConfigError(f"recipe.edge_case_share={share}: every member of the recipe is an edge-case one, so "
                          "the rest of the rows has nowhere to come from (set 1.0 or null)")
    return edge_share_weights(w, [m.category == "edge_case" for m in members], share)


def _draw_split(split: str, total: int, members: list[_Member], hyg: _Hygiene, shortfall: str,
                weights_of: list[float] | None = None) -> tuple[list[_Item], dict[str, Any]]:
    active = [m for m in members if m.has[split]]
    if not active or total == 0:
        if total > 0:
            key = {"train": "size", "test": "test_size", "ood": "ood_size"}[split]
            log.warning("recipe: recipe.%s=%d asked for %s prompts, but no family or source of the recipe offers "
                        "any: the %s split stays empty", key, total, split, split)
        return [], {"requested": total, "realised": 0, "short": []}
    weights = [weights_of[members.index(m)] if weights_of else m.weight for m in active]
    got: list[list[_Item]] = [[] for _ in active]
    exhausted: set[int] = set()
    full: set[int] = set()  # its next group no longer fits in the remaining slots
    parked: dict[int, _Item] = {}
    short: list[str] = []
    order: list[tuple[int, _Item]] = []
    slots = 0
    counts = [0] * len(active)
    while slots < total:
        live = [i for i in range(len(active)) if i not in exhausted and i not in full and weights[i] > 0]
        if not live:
            break
        # next slot by Sainte-Laguë over all members (shrink) or over the live ones (fill)
        pool = [j for j in range(len(active)) if j not in full] if shortfall != "fill" else live
        i = max(pool, key=lambda j: (weights[j] / (2 * counts[j] + 1), -j))
        if i in exhausted:
            break  # shrink: the member whose turn it is has nothing left; the mix stays as asked
        item = parked.pop(i, None) or next((it for it in active[i].items[split] if hyg.accept_group(split, it)),
                                           None)
        if item is not None and slots + item.size > total:
            full.add(i)  # a pair does not fit in the last slot: another member takes it (the parked pair
            parked[i] = item  # stays registered by the hygiene: at worst a train look-alike of it is dropped)
            continue
        if item is None:
            exhausted.add(i)
            short.append(active[i].label)
            if shortfall == "error":
                raise ConfigError(f"recipe: {active[i].label} ran out of {split} prompts after {counts[i]} "
                                  f"(asked {quota(total, weights)[i]} of {total}); lower recipe.size or its weight, "
                                  "or set recipe.shortfall=shrink|fill")
            continue
        counts[i] += item.size
        slots += item.size
        got[i].append(item)
        order.append((i, item))
    report = {"requested": total, "realised": slots, "short": short,
              "asked": {m.label: q for m, q in zip(active, quota(total, weights), strict=True)},
              "got": {m.label: c for m, c in zip(active, counts, strict=True)}}
    if slots < total:
        log.warning("recipe: %s split realised %d of %d (short: %s, policy %s)", split, slots, total, short, shortfall)
    return [it for _, it in order], report


def build_problems(recipe: RecipeConfig) -> RecipeResult:
    """The recipe's prompts per split (for the teacher) and its imported teacher rows, with stats."""
    sizes = {"train": recipe.size, "test": recipe.test_size, "ood": recipe.ood_size}
    members, sources = _members(recipe)
    tw = train_weights(members, recipe)
    hyg = _Hygiene(recipe)
    problems: dict[str, list[Problem]] = {s: [] for s in SPLITS}
    imported: list[dict[str, Any]] = []
    shortfall: dict[str, Any] = {}
    for split in DRAW_ORDER:
        items, shortfall[split] = _draw_split(split, sizes[split], members, hyg, recipe.shortfall,
                                              tw if split == "train" else None)
        for it in items:
            if it.problem is not None:
                problems[split].append(it.problem)
                problems[split].extend(it.followers)
            else:
                imported.append(it.row)  # type: ignore[arg-type]
    for label, src in sources.items():  # a size that keeps fewer rows than a source offers: say so
        for split, key in (("train", "size"), ("test", "test_size"), ("ood", "ood_size")):
            offered, kept = src.count(split), shortfall[split].get("got", {}).get(label, 0)
            if kept < offered:
                log.warning("recipe: %s offers %d %s %s; recipe.%s=%d and the mix keep %d of them (raise recipe.%s "
                            "to take more)", label, offered, split, "rows" if src.rows[split] else "prompts", key,
                            sizes[split], kept, key)
    coverage = {}
    for spec in recipe.families:
        fam = get_family(spec.name, **dict(spec.params))
        mine = [p for p in problems["train"] if p.task == spec.name]
        held = [p for s in HELD_OUT_SPLITS for p in problems[s] if p.task == spec.name]
        cov = fam.coverage(mine, held)
        if cov is not None:
            coverage[spec.name] = cov
            if cov.get("share_taught", 1.0) < 1.0:
                log.warning("recipe: only %d of %d held-out %s questions are taught in train (raise recipe.size "
                            "or lower the family's n_facts)", cov["heldout_taught"], cov["heldout"], spec.name)
    train_prompts = {normalize(p.prompt) for p in problems["train"]}
    memorisation: dict[str, dict[str, int]] = {}
    for p in (p for s in HELD_OUT_SPLITS for p in problems[s] if p.meta.get("in_train")):
        m = memorisation.setdefault(p.task, {"asked": 0, "in_train": 0})
        m["asked"] += 1
        m["in_train"] += normalize(p.prompt) in train_prompts
    for task, m in memorisation.items():
        if m["in_train"] < m["asked"]:
            log.warning("recipe: %d of %d %s prompts (asked in their training phrasing) are not in train: raise "
                        "recipe.size or lower the family's n_facts", m["asked"] - m["in_train"], m["asked"], task)
    every = [(p.task, p.category, p.split) for ps in problems.values() for p in ps] + \
            [(r["task"], r["category"], r["split"]) for r in imported]
    stats = {
        "counts": {s: len(problems[s]) + sum(r["split"] == s for r in imported) for s in SPLITS},
        "per_family": _nested(Counter((t, s) for t, _, s in every)),
        "per_category": _nested(Counter((c, s) for _, c, s in every)),
        "imported_rows": len(imported),
        "filters": dict(hyg.counts),
        "coverage": coverage,
        "filter_examples": hyg.examples,
        "shortfall": shortfall,
        "sources": {label: {"records": src.read, "bad_skipped": len(src.bad), "bad_examples": src.bad[:5],
                            "rejected_skipped": src.rejected,
                            "usable": {s: src.count(s) for s in SPLITS}} for label, src in sources.items()},
        "members": [{"member": m.label, "weight": m.weight, "train_weight": w} for m, w in zip(members, tw, strict=True)],
        "dose": {"match_dose": recipe.match_dose, "edge_case_share": recipe.edge_case_share},
        "memorisation": memorisation,
        "seed": recipe.seed,
        # kept for the first generate stage's summary
        "cross_split_overlaps_removed": sum(v for k, v in hyg.counts.items() if k.startswith(("decontam", "cross"))),
    }
    return RecipeResult(problems=problems, imported_rows=imported, stats=stats)


def _nested(c: Counter) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (a, s), n in sorted(c.items()):
        out.setdefault(a, {})[s] = n
    return out
