"""Resolution before spending: what a sweep can detect, read from its config before it runs.

``distill-lab report report.check_design=true experiment=effort_x_size`` composes the sweep as
``distill-lab pipeline -m experiment=effort_x_size`` would (the experiment's ``hydra.sweeper.params``
plus ``report.design_overrides``, each written as on a ``-m`` command line: ``["seed=0,1,2"]``), expands
its grid, validates every cell's config, and prints per cell (the grid without the seed):

- prompts x seeds: held-out prompts per split and capability category (the recipe's families and sources at
  their weights; sources are not loaded, so a source short of its share is not seen), and the seeds that train it;
- training dose per family: train rows (the recipe's Sainte-Laguë quota of ``recipe.size`` over its train
  weights: the families' weights, equal ones with ``recipe.match_dose=rows``, rescaled by
  ``recipe.edge_case_share``, as ``generate/recipe.train_weights``), rows seen
  (optimizer steps x rows per step, ``batch_size x grad_accum x devices x nodes``; the steps are
  ``train.max_steps``, or epochs over the rows, or with ``train.token_budget`` the steps that budget takes,
  below), and, with the offline oracle teacher, the characters of its answers (thinking + answer, measured
  on the family's first train problems at the cell's effort);
- with ``train.token_budget``: the steps follow from the rows' lengths in the student's tokens (the train
  stage's ``plan_steps``). With the oracle teacher the design estimates them from the oracle's answers on
  those problems, tokenized by the student's tokenizer as the train stage does (``supervised``: the
  assistant span's targets; ``processed``: every token of the row): steps = ceil(budget / (rows per step x
  mean tokens per row)), capped by ``train.max_steps``; a budget the cap cannot hold is shown as refused (the
  train stage refuses it). Without the oracle, or when the tokenizer cannot load, the rows seen are shown
  as unknown with the reason (never the step cap's count, which is not what trains);
- the minimum detectable effect (MDE) of a contrast between two cells at ``eval.confidence`` and
  ``report.design_power``, per split and per category.

The MDE model (assumptions printed with the numbers): both cells answer the same P prompts and are
trained at the same S seeds; a cell's accuracy is near ``report.design_accuracy`` (p); its seed-to-seed
SD is ``report.design_seed_sd`` (sigma, independent between the cells); a prompt's correctness in the
two cells correlates with ``report.design_prompt_corr`` (rho; 0 = unpaired). Then

    Var(difference) = 2 sigma^2 / S + 2 p (1 - p) (1 - rho) / P

where the prompt term does not shrink with more seeds (every seed answers the same prompts: the bound
when a prompt's answer is the same in every seed, as in our studies), and the MDE is statsmodels'
one-sample t power solution (``TTestPower``) at the Welch-Satterthwaite degrees of freedom of the two
terms, times the standard error: the interval the report computes estimates both terms, so with 2 seeds
the seed term's single degree of freedom limits it, and more prompts buy almost nothing (more seeds do).
One seed measures no seed variance: its MDE counts sigma all the same.

``report.design_pilot=<a finished sweep or its samples.jsonl.gz>`` measures p, sigma and rho per split from
that pilot instead (``report/pilot.py``, which states the rule); design.md / design.json record where
each assumption came from, and design.md warns when the seed SD is assumed rather than measured.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.errors import ConfigError
from distill_lab.stages.report.tables import markdown_table
from distill_lab.students.chat import IGNORE

SEED_KEY = "seed"
N_ORACLE_PROBE = 32  # train problems per family whose oracle answers are measured


@dataclass
class Assumptions:
    accuracy: float = 0.5
    seed_sd: float = 0.05
    prompt_corr: float = 0.5
    confidence: float = 0.95
    power: float = 0.8


@dataclass
class Cell:
    label: str  # the swept values except the seed
    overrides: list[str]
    seeds: list[str]
    prompts: dict[str, int]  # split -> held-out prompts
    prompts_by_category: dict[str, dict[str, int]]  # split -> category -> prompts
    rows_by_family: dict[str, int]  # train rows
    rows_seen: int | None  # optimizer steps x rows per step (what training steps over); None: unknown
    chars_per_row: dict[str, float] = field(default_factory=dict)  # oracle answer characters, per family
    effort: str | None = None
    # train.token_budget's dose: {unit, budget, cap_steps, rows_per_step, tokens_per_row (oracle estimate,
    # per family), steps, status: estimated | exceeds cap | unknown, reason}; None without a budget
    token_budget: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)  # the recipe's sources, counted at their weights (unloaded)


def mde(seeds: int, prompts: int, a: Assumptions) -> dict[str, float]:
    """Minimum detectable difference (a fraction) of a contrast between two cells of ``seeds`` x ``prompts``."""
    if seeds < 1 or prompts < 1:
        raise ValueError(f"mde: need at least one seed and one prompt, got seeds={seeds}, prompts={prompts}")
    from statsmodels.stats.power import TTestPower

    v_seed = 2 * a.seed_sd ** 2 / seeds
    v_prompt = 2 * a.accuracy * (1 - a.accuracy) * (1 - a.prompt_corr) / prompts
    v = v_seed + v_prompt
    den = (v_seed ** 2 / (seeds - 1) if seeds > 1 else 0.0) + (v_prompt ** 2 / (prompts - 1) if prompts > 1 else 0.0)
    df = v * v / den if den > 0 else 1e6
    df = max(df, 1.0)
    d = TTestPower().solve_power(effect_size=None, nobs=df + 1, alpha=1 - a.confidence, power=a.power,
                                 alternative="two-sided")
    se = math.sqrt(v)
    return {"mde": float(d) * se * math.sqrt(df + 1), "se": se, "df": df}


def sainte_lague(total: int, weights: list[float]) -> list[int]:
    """Slots per member of ``total`` dealt by Sainte-Laguë, as the recipe deals them (``generate/recipe.py``
    ``quota``; a stage cannot import another stage, and the test checks the two agree)."""
    got = [0] * len(weights)
    for _ in range(total):
        i = max(range(len(weights)), key=lambda j: (weights[j] / (2 * got[j] + 1), -j))
        got[i] += 1
    return got


def _compose(overrides: list[str], hydra: bool = False) -> Any:
    """The pipeline's config for ``overrides``, as its entry point composes it (the stage cannot import the
    app layer: Hydra directly, over the shipped configs, whose schema the entry point registered)."""
    from hydra import compose, initialize_config_module
    from hydra.core.config_store import ConfigStore
    from hydra.core.global_hydra import GlobalHydra

    if "_config_schema.yaml" not in ConfigStore.instance().repo:
        raise RuntimeError("design: the config schema is not registered (distill_lab.config.register_configs(); "
                           "every stage entry point calls it)")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="distill_lab.conf", version_base="1.3"):
            return compose("stages/pipeline", overrides=list(overrides), return_hydra_config=hydra)
    finally:
        GlobalHydra.instance().clear()


def _typed(overrides: list[str], base: Any = None) -> Any:
    """The validated typed config of one job (its dataclasses' own checks run). Given ``base`` (the composed
    config of the sweep's fixed overrides) and only plain ``key=value`` overrides of existing keys, the
    values are set on a copy of it instead of a new composition (the same result, ten times faster);
    a config-group choice (``student=tiny``) is composed anew."""
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    try:
        if base is not None and all(_plain(o, base) for o in overrides):
            dcfg = base.copy()
            for o in overrides:
                key, _, value = o.partition("=")
                OmegaConf.update(dcfg, key, _value(value), merge=False)
        else:
            dcfg = _compose(overrides)
        with open_dict(dcfg):
            dcfg.pop("hydra", None)
        return OmegaConf.to_object(dcfg)
    except ConfigError:
        raise
    except (OmegaConfBaseException, Exception) as e:  # noqa: BLE001 (Hydra / OmegaConf word the bad key or value)
        raise ConfigError(str(e).splitlines()[0]) from None


def _plain(override: str, base: Any) -> bool:
    """``a.b=value`` setting a key that exists and is not a config group (no +, ~, @ or group choice)."""
    from omegaconf import OmegaConf

    key = override.partition("=")[0]
    if not key or key[0] in "+~" or "@" in key or "." not in key and key != SEED_KEY:
        return False
    return OmegaConf.select(base, key, default="__missing__") != "__missing__"


def _value(text: str) -> Any:
    """An override's value as Hydra's grammar reads it (numbers, booleans, null, quoted or plain strings)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(f"x={text}").value()


def _grid(overrides: list[str], extra: list[str]) -> tuple[list[list[str]], Any]:
    """The jobs of the sweep (override lists) and the composed config of the first one."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    try:
        parsed_extra = parser.parse_overrides(extra)
    except Exception as e:  # noqa: BLE001 (Hydra's parser words the problem)
        raise ConfigError(f"report.design_overrides: {e}") from None
    fixed = [o for o, p in zip(extra, parsed_extra, strict=True) if not p.is_sweep_override()]
    try:
        base = _compose([*overrides, *fixed], hydra=True)
    except Exception as e:  # noqa: BLE001 (an unknown experiment, key or value)
        msg = "; ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())[:400]
        raise ConfigError(f"report.check_design: the sweep's config does not compose: {msg}") from None
    target = str(OmegaConf.select(base, "hydra.sweeper._target_", default="") or "")
    params = OmegaConf.select(base, "hydra.sweeper.params", default=None)
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    if not target.endswith("BasicSweeper"):
        raise ConfigError(f"report.check_design: the sweeper {target or '(none)'} samples its jobs; only a grid "
                          "(Hydra's basic sweeper) can be checked before it runs")
    args = [f"{k}={v}" for k, v in (params or {}).items()] + list(extra) + list(overrides)
    try:
        batches = BasicSweeper.split_arguments(parser.parse_overrides(args), None)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"report.check_design: cannot expand the sweep grid ({e})") from None
    jobs = [list(job) for batch in batches for job in batch]
    if len(jobs) < 2 and not any(p.is_sweep_override() for p in parser.parse_overrides(args)):
        raise ConfigError("report.check_design: this config sweeps nothing (no hydra.sweeper.params in the "
                          "experiment, no sweep in report.design_overrides): name a sweep experiment, e.g. "
                          "experiment=effort_x_size, or add report.design_overrides='[\"seed=0,1,2\"]'")
    return jobs, base


def _oracle_rows(cfg: Any, effort: str) -> dict[str, list[list[dict[str, Any]]]]:
    """The oracle's conversations (prompt, then its answer) per family, on its first train problems."""
    from distill_lab.tasks.base import get_family

    out: dict[str, list[list[dict[str, Any]]]] = {}
    for spec in cfg.recipe.families:
        fam = get_family(spec.name, **dict(spec.params))
        rng = random.Random(f"{cfg.recipe.seed}/{spec.name}/train")
        convs = []
        for i, p in enumerate(fam.stream("train", rng)):
            if i >= N_ORACLE_PROBE:
                break
            reasoning, answer = fam.oracle(p, effort)
            convs.append([*p.messages(), {"role": "assistant", "content": answer, "reasoning_content": reasoning}])
        if convs:
            out[spec.name] = convs
    return out


def _oracle_chars(rows: dict[str, list[list[dict[str, Any]]]]) -> dict[str, float]:
    """Mean characters of the oracle's answers (thinking + answer) per family."""
    return {f: sum(len(c[-1]["reasoning_content"]) + len(c[-1]["content"]) for c in convs) / len(convs)
            for f, convs in rows.items()}


def _budget_dose(cfg: Any, rows: dict[str, list[list[dict[str, Any]]]], rows_by_family: dict[str, int],
                 rows_per_step: int, tokenizers: dict[str, Any]) -> dict[str, Any]:
    """What ``train.token_budget`` trains (module docstring): the steps it takes, estimated from the oracle's
    rows in the student's tokens, or unknown with the reason."""
    tr = cfg.train
    cap = tr.max_steps if not tr.epochs else math.ceil(tr.epochs * cfg.recipe.size / rows_per_step)
    out: dict[str, Any] = {"unit": tr.token_budget_unit, "budget": tr.token_budget, "cap_steps": cap,
                           "rows_per_step": rows_per_step, "tokens_per_row": {}, "steps": None,
                           "status": "unknown", "reason": None}
    if not rows:
        out["reason"] = (f"the steps depend on teacher {cfg.teacher.provider}'s row lengths, known after generate "
                         "(the train stage's summary: rows_seen, token_budget)")
        return out
    from distill_lab.students.chat import tokenize_conversation
    from distill_lab.students.loader import load_tokenizer

    key = json.dumps(asdict(cfg.student), sort_keys=True, default=str)
    if key not in tokenizers:
        try:
            tokenizers[key] = load_tokenizer(cfg.student)
        except Exception as e:  # noqa: BLE001 (no network, not cached: recorded as the reason, not hidden)
            tokenizers[key] = e
    tok = tokenizers[key]
    if isinstance(tok, Exception):
        out["reason"] = f"the student's tokenizer ({cfg.student.name}) did not load: {str(tok).splitlines()[0][:200]}"
        return out
    for fam, convs in rows.items():
        counts = []
        for c in convs:
            t = tokenize_conversation(tok, c, where=f"design: oracle row of {fam}")
            counts.append(sum(1 for x in t.labels[1:] if x != IGNORE) if tr.token_budget_unit == "supervised"
                          else len(t.input_ids))
        out["tokens_per_row"][fam] = sum(counts) / len(counts)
    total_rows = sum(rows_by_family.get(f, 0) for f in out["tokens_per_row"])
    if not total_rows:
        out["reason"] = "no train rows"
        return out
    per_row = sum(rows_by_family.get(f, 0) * n for f, n in out["tokens_per_row"].items()) / total_rows
    need = math.ceil(tr.token_budget / (rows_per_step * per_row))
    out["steps"] = min(need, cap)
    out["status"] = "estimated" if need <= cap else "exceeds cap"
    if need > cap:
        out["reason"] = (f"needs ~{need} steps, above the cap of {cap} (train.max_steps or epochs): the train "
                         "stage refuses this cell")
    return out


def train_weights(weights: list[float], categories: list[str], match_dose: str | None,
                  edge_case_share: float | None) -> list[float]:
    """The families' weights in the train deal, as the recipe deals them (``generate/recipe.train_weights``;
    a stage cannot import another stage, and the test checks the two agree): equal with ``match_dose=rows``,
    then the edge-case families rescaled to ``edge_case_share`` of the total and the others to the rest."""
    w = [1.0 if match_dose == "rows" else x for x in weights]
    if edge_case_share is None:
        return w
    from distill_lab.tasks.train_deal import edge_share_weights

    return edge_share_weights(w, [c == "edge_case" for c in categories], edge_case_share)


def _cell(cfg: Any, label: str, overrides: list[str], tokenizers: dict[str, Any] | None = None) -> Cell:
    from distill_lab.tasks.base import family_class

    rec = cfg.recipe
    # the recipe's members as generate deals them: its families, then its sources (weight and category each)
    names = [f.name for f in rec.families] + [source_label(s) for s in rec.sources]
    weights = [f.weight for f in rec.families] + [s.weight for s in rec.sources]
    cats = [family_class(f.name).category for f in rec.families] + [s.category for s in rec.sources]
    # held-out problems per group: 2 where each comes with its paired control (edge_checks), else 1
    groups = [getattr(family_class(f.name), "held_out_group", 1) for f in rec.families] + [1 for _ in rec.sources]
    prompts: dict[str, int] = {}
    by_cat: dict[str, dict[str, int]] = {}
    for split in cfg.eval.splits:
        total = {"test": rec.test_size, "ood": rec.ood_size}.get(split, 0)
        if cfg.eval.max_prompts is not None:
            total = min(total, cfg.eval.max_prompts)
        per_member = held_out_deal(total, weights, groups)
        prompts[split] = total
        c: Counter[str] = Counter()
        for cat, n, g in zip(cats, per_member, groups, strict=True):
            c[cat] += n // g  # a pair's control is reported apart, never inside the category (its probe counts)
        by_cat[split] = dict(c)
    tw = train_weights(weights, cats, rec.match_dose, rec.edge_case_share)
    rows = dict(zip(names, sainte_lague(rec.size, tw), strict=True))
    tr = cfg.train
    per_step = tr.batch_size * tr.grad_accum * cfg.hardware.devices * cfg.hardware.num_nodes
    effort = cfg.teacher.effort_name
    oracle = _oracle_rows(cfg, effort) if cfg.teacher.provider == "oracle" else {}
    budget = None
    if tr.token_budget is not None:
        budget = _budget_dose(cfg, oracle, rows, per_step, tokenizers if tokenizers is not None else {})
        seen = budget["steps"] * per_step if budget["status"] == "estimated" else None
    else:
        seen = (math.ceil(tr.epochs * rec.size / per_step) if tr.epochs else tr.max_steps) * per_step
    return Cell(label=label, overrides=overrides, seeds=[], prompts=prompts, prompts_by_category=by_cat,
                rows_by_family=rows, rows_seen=seen, chars_per_row=_oracle_chars(oracle), effort=effort,
                token_budget=budget, sources=[source_label(s) for s in rec.sources])


def _fixed_only(items: list[str], overrides: list[str]) -> bool:
    """The job's overrides are the command's own plus plain swept keys (its base composition holds the rest)."""
    return all(o in items for o in overrides)


def check_design(overrides: list[str], extra: list[str] | None = None,
                 assumptions: Assumptions | None = None,
                 by_split: dict[str, Assumptions] | None = None) -> dict[str, Any]:
    """The design of the sweep that ``distill-lab pipeline -m <overrides> <extra>`` would launch. ``by_split``:
    the assumptions of a split where they differ from ``assumptions`` (measured by a pilot, ``report/pilot.py``)."""
    a = assumptions or Assumptions()
    by_split = by_split or {}
    for name, v, lo, hi in (("report.design_accuracy", a.accuracy, 0.0, 1.0),
                            ("report.design_prompt_corr", a.prompt_corr, 0.0, 1.0)):
        if not lo <= v <= hi:
            raise ConfigError(f"{name}: must be in [{lo}, {hi}], got {v}")
    if a.seed_sd < 0:
        raise ConfigError(f"report.design_seed_sd: must be >= 0, got {a.seed_sd}")
    if not 0 < a.power < 1:
        raise ConfigError(f"report.design_power: must be in (0, 1), got {a.power}")
    jobs, base = _grid(list(overrides), list(extra or []))
    from omegaconf import open_dict

    with open_dict(base):
        base.pop("hydra", None)
    cells: dict[str, Cell] = {}
    tokenizers: dict[str, Any] = {}  # one tokenizer per student, loaded once
    varying = {o.split("=", 1)[0] for job in jobs for o in job if sum(o in j for j in jobs) < len(jobs)}
    for job in jobs:
        items = [o for o in job if not o.startswith("hydra.")]
        label = ", ".join(o for o in items if o.split("=", 1)[0] in varying
                          and o.split("=", 1)[0].lstrip("+~") != SEED_KEY)
        seed = next((o.split("=", 1)[1] for o in items if o.split("=", 1)[0] == SEED_KEY), "0")
        if label not in cells:
            try:
                cfg = _typed([o for o in items if o not in overrides], base) if _fixed_only(items, overrides) \
                    else _typed(items)
            except ConfigError as e:
                raise ConfigError(f"report.check_design: the job ({' '.join(items)}) is not a valid config: {e}") \
                    from None
            cells[label] = _cell(cfg, label or "(one cell)", items, tokenizers)
            if not any(cells[label].prompts.values()):
                raise ConfigError(f"report.check_design: cell {label or '(one cell)'} evaluates no held-out prompts "
                                  "(recipe.test_size and recipe.ood_size are 0, or eval.splits is empty)")
        cells[label].seeds.append(seed)
    out_cells = list(cells.values())
    resolution = []
    for c in out_cells:
        s = len(set(c.seeds))
        for split, p in c.prompts.items():
            sa = by_split.get(split, a)
            if p:
                resolution.append({"cell": c.label, "split": split, "category": "all", "seeds": s, "prompts": p,
                                   **mde(s, p, sa)})
            for cat, n in sorted(c.prompts_by_category.get(split, {}).items()):
                if n and len(c.prompts_by_category[split]) > 1:
                    resolution.append({"cell": c.label, "split": split, "category": cat, "seeds": s,
                                       "prompts": n, **mde(s, n, sa)})
    splits = sorted({r["split"] for r in resolution}, key=lambda x: (x != "test", x))
    return {"jobs": len(jobs), "cells": [asdict(c) for c in out_cells], "assumptions": asdict(a),
            "assumptions_by_split": {sp: asdict(by_split.get(sp, a)) for sp in splits}, "resolution": resolution}


def held_out_deal(total: int, weights: list[float], groups: list[int]) -> list[int]:
    """Held-out prompts per member as generate deals a split when no member runs short
    (``stages/generate/recipe._draw_split``; a stage cannot import another, the test checks the two agree):
    slot by slot to the member of the highest Sainte-Laguë quotient, a member's next group (a probe and its
    paired control: 2) taking that many slots, and a member whose group no longer fits leaving the last
    slots to the others."""
    counts, full, slots = [0] * len(weights), set(), 0
    while slots < total:
        pool = [j for j in range(len(weights)) if j not in full and weights[j] > 0]
        if not pool:
            break
        i = max(pool, key=lambda j: (weights[j] / (2 * counts[j] + 1), -j))
        if slots + groups[i] > total:
            full.add(i)
            continue
        counts[i] += groups[i]
        slots += groups[i]
    return counts


def source_label(spec: Any) -> str:
    """A recipe source in the design's tables: ``source:<name>`` (its file or hub id's last part unnamed)."""
    return "source:" + (spec.name or Path(str(spec.path).rstrip("/")).name)


def _sources_note(d: dict[str, Any]) -> list[str]:
    names = sorted({s for c in d["cells"] for s in c.get("sources", [])})
    if not names:
        return []
    return ["", f"Sources ({', '.join(names)}) are counted at their weights, as if each offered every split in "
            "full: the design does not load them. A source with fewer prompts than its share of a split, or none "
            "in it, leaves that split smaller (generate's dataset card gives the counts it drew).", ""]


def _seen_text(c: dict[str, Any]) -> str:
    b = c.get("token_budget")
    if b is None:
        return str(c["rows_seen"])
    what = f"{b['budget']} {b['unit']} tokens"
    if b["status"] == "estimated":
        return f"~{c['rows_seen']} ({b['steps']} steps for {what})"
    return f"? ({what}: {b['reason']})"


def design_markdown(d: dict[str, Any]) -> str:
    a = d["assumptions"]
    lines = ["# Sweep design: what it can detect", "",
             f"{d['jobs']} jobs in {len(d['cells'])} cells.", "", "## Prompts x seeds per cell", ""]
    lines += markdown_table(["cell", "seeds", *[f"{s} prompts" for s in ("test", "ood")], "by category"],
                            ([c["label"], len(set(c["seeds"])), c["prompts"].get("test", 0), c["prompts"].get("ood", 0),
                              "; ".join(f"{s}: " + ", ".join(f"{k} {v}" for k, v in sorted(cats.items()))
                                        for s, cats in c["prompts_by_category"].items())]
                             for c in d["cells"]))
    lines += _sources_note(d)
    lines += ["", "## Training dose per family", "",
              "Train rows (the recipe's quota of recipe.size), rows seen by the optimizer (steps x rows per step; "
              "with train.token_budget the steps the budget takes, estimated from the oracle's rows in the "
              "student's tokens), and with the oracle teacher the characters of its answers per row (thinking + "
              "answer; the train stage reports supervised tokens).", ""]
    lines += markdown_table(["cell", "effort", "family", "train rows", "rows seen (all families)", "chars / row",
                             "chars in train rows"],
                            ([c["label"], c["effort"], fam, n, _seen_text(c),
                              f"{c['chars_per_row'][fam]:.0f}" if fam in c["chars_per_row"] else "–",
                              f"{n * c['chars_per_row'][fam]:.0f}" if fam in c["chars_per_row"] else "–"]
                             for c in d["cells"] for fam, n in c["rows_by_family"].items()))
    lines += ["", f"## Smallest effect a contrast between two cells can detect ({a['confidence']:.0%} confidence, "
              f"{a['power']:.0%} power)", ""]
    lines += _assumption_lines(d)
    groups: dict[tuple, list[str]] = {}  # cells of the same design share one row
    for r in d["resolution"]:
        groups.setdefault((r["split"], r["category"], r["seeds"], r["prompts"]), []).append(r["cell"])
    first = {(r["split"], r["category"], r["seeds"], r["prompts"]): r for r in reversed(d["resolution"])}
    lines += markdown_table(["split", "category", "seeds", "prompts", "MDE (points)", "SE (points)", "df", "cells"],
                            ([*k, f"{100 * first[k]['mde']:.1f}", f"{100 * first[k]['se']:.1f}",
                              f"{first[k]['df']:.1f}", "every cell" if len(cs) == len(d["cells"]) else "; ".join(cs)]
                             for k, cs in groups.items()))
    return "\n".join(lines) + "\n"


def _assumption_lines(d: dict[str, Any]) -> list[str]:
    """The MDE's assumptions per split, where each came from, and a pilot's per-cell seed SDs."""
    a, by, src = d["assumptions"], d.get("assumptions_by_split") or {}, d.get("assumption_sources") or {}
    lines = ["Assumptions: a cell's accuracy near p, a seed-to-seed SD of a cell's accuracy, a prompt's correctness "
             "in the two cells correlated rho (paired prompts), the same prompts in every seed (the prompt term does "
             "not shrink with seeds). Var = 2 SD^2 / seeds + 2 p (1 - p) (1 - rho) / prompts; MDE from statsmodels' "
             "t power at the Welch-Satterthwaite df (`report/design.py`). Set report.design_accuracy, "
             "report.design_seed_sd, report.design_prompt_corr, report.design_power, or measure the first three "
             "with report.design_pilot=<a pilot sweep> (`report/pilot.py`).", ""]
    rows = [(sp, by.get(sp, a), src.get(sp, {})) for sp in (by or {"all": a})]
    pilot = d.get("pilot")
    cut = f"measured from {pilot['source']}: " if pilot else "\0"  # the path once, above the table
    if pilot:
        lines += [f"Measured from the pilot `{pilot['source']}` (its cells below) unless the source says configured:", ""]
    lines += markdown_table(["split", "accuracy p", "seed SD (points)", "prompt corr rho", "source"],
                            ([sp, f"{x['accuracy']:.1%}", f"{100 * x['seed_sd']:.1f}", f"{x['prompt_corr']:.2f}",
                              "; ".join(f"{k}: {v.replace(cut, 'measured, ')}" for k, v in s.items()) or "configured"]
                             for sp, x, s in rows))
    assumed = [sp for sp, _, s in rows if not s.get("seed_sd", "").startswith("measured")]
    if assumed and not pilot:
        lines += ["", "**Seed SD assumed, not measured: pass report.design_pilot=<a pilot sweep> to measure it.**"]
    elif assumed:
        lines += ["", f"**Seed SD assumed, not measured, for {', '.join(assumed)}: see the source column.**"]
    if pilot:
        lines += ["", f"Pilot {pilot['source']}: {pilot['runs']} finished runs in {len(pilot['cells'])} cells; the "
                  "SD over seeds of each cell's student accuracy (points):", ""]
        splits = list(pilot["splits"])
        lines += markdown_table(["cell", "seeds", *[f"{s} accuracy per seed (%)" for s in splits],
                                 *[f"{s} SD" for s in splits]],
                                ([c["cell"], len(c["seeds"]),
                                  *[", ".join(f"{100 * v:.0f}" for v in c["accuracy"][s].values()) for s in splits],
                                  *["–" if c["seed_sd"][s] is None else f"{100 * c['seed_sd'][s]:.1f}" for s in splits]]
                                 for c in pilot["cells"]))
    return [*lines, ""]


def run_check(cfg: Any, run_dir: Path):
    """The ``report`` stage with ``report.check_design=true``: ``design.md`` / ``design.json`` and the table
    printed. The sweep's overrides are this command's own (Hydra's ``overrides.task``) minus ``report.*``."""
    from hydra.core.hydra_config import HydraConfig

    from distill_lab.stages.common import StageResult

    rc = cfg.report
    try:
        task = list(HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (a direct call): nothing but the config's own values
        task = []
    overrides = [o for o in task if not o.lstrip("+~").startswith(("report.", "run_dir=", "stage="))]
    a = Assumptions(accuracy=rc.design_accuracy, seed_sd=rc.design_seed_sd, prompt_corr=rc.design_prompt_corr,
                    confidence=cfg.eval.confidence, power=rc.design_power)
    pilot, by_split, sources = None, None, {}
    if rc.design_pilot:  # measured before anything else runs (a bad pilot fails here)
        from distill_lab.stages.report import pilot as pilot_mod

        explicit = {o.lstrip("+").partition("=")[0] for o in task}
        pilot = pilot_mod.measure(rc.design_pilot)
        by_split, sources = pilot_mod.assumptions(pilot, a, explicit)
    d = check_design(overrides, list(rc.design_overrides), a, by_split)
    if pilot is not None:
        d["pilot"], d["assumption_sources"] = pilot, sources
    out_dir = Path(rc.output_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = design_markdown(d)
    (out_dir / "design.md").write_text(md)
    (out_dir / "design.json").write_text(json.dumps(d, indent=2) + "\n")
    print(md)
    worst = max((r["mde"] for r in d["resolution"] if r["category"] == "all"), default=None)
    return StageResult(artifacts={"design_md": str(out_dir / "design.md"), "design_json": str(out_dir / "design.json")},
                       summary={"jobs": d["jobs"], "cells": len(d["cells"]), "largest_mde_all_prompts": worst})
