"""Mixed-effort distillation (``recipe.effort_mix``): one prompt pool, several efforts, mixed by share.

- the spec: its forms, its label, its errors (each naming the field), the teacher cross-check;
- the assignment: exact shares per family, deterministic, nested across sizes, "short for easy / long
  for hard" by the family's stated difficulty, held-out prompts at the most detailed effort, no prompt
  twice unless asked;
- end to end with the oracle (rows record their effort, dataset.json carries the mix's label, cost and
  tokens per effort in the summary and the card, a re-run resumes), and over the local fake APIs: the
  per-row effort reaches each request (OpenAI ``reasoning_effort``; Anthropic thinking budget and
  ``output_config.effort``, in single requests and in Message Batches);
- a ``-m`` sweep over mixes parses, and its run folders are named without escapes.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from distill_lab.artifacts.dataset import DatasetInfo
from distill_lab.artifacts.rows import load_rows
from distill_lab.errors import ConfigError
from distill_lab.stages.generate.config import RecipeConfig
from distill_lab.stages.generate.effort_mix import assign_efforts, parse_mix
from distill_lab.stages.generate.recipe import build_problems
from distill_lab.stages.generate.run import run
from distill_lab.tasks.arithmetic import count_carries
from tests.conftest import compose_config
from tests.fake_api.harness import SECRET, gen_config

MIX = "low@0.5+high@0.5"


def test_spec_forms_and_label():
    a = parse_mix("low@1+high@3")
    assert a.efforts == ["low", "high"] and a.weights == [0.25, 0.75] and a.top == "high"
    assert a.label == "mix(low:0.25,high:0.75)"
    assert parse_mix("high:0.5,low:0.5").label == parse_mix(MIX).label == "mix(low:0.5,high:0.5)"  # effort order
    assert parse_mix("low@1+medium@1+high@1").label == "mix(low:0.3333,medium:0.3333,high:0.3333)"


@pytest.mark.parametrize("spec,msg", [
    ("low@0.5+hgih@0.5", "unknown effort 'hgih'"),
    ("high@1", "at least two"),
    ("low@0.5+low@0.5", "appears twice"),
    ("low@0+high@1", "must be > 0"),
    ("low-0.5+high@1", "cannot read"),
])
def test_bad_specs_name_the_field(spec, msg):
    with pytest.raises(ConfigError, match=rf"recipe\.effort_mix: .*{msg}"):
        compose_config([f"recipe.effort_mix={spec}", "student=tiny"], stage="generate")


def test_config_cross_checks():
    with pytest.raises(ConfigError, match=r"recipe\.effort_mix_duplicate"):
        compose_config(["recipe.effort_mix=low@1+high@3", "recipe.effort_mix_duplicate=true"], stage="generate")
    with pytest.raises(ConfigError, match=r"recipe\.effort_assign"):
        compose_config(["recipe.effort_assign=longest"], stage="generate")
    # an effort the teacher does not take is refused before anything is sent, naming the mix
    with pytest.raises(ConfigError, match=r"recipe\.effort_mix: effort 'xhigh'.*teacher\.effort"):
        compose_config(["teacher=anthropic_opus45", "recipe.effort_mix=low@0.5+xhigh@0.5"], stage="generate")
    cfg = compose_config(["teacher=anthropic_opus45", f"recipe.effort_mix={MIX}"], stage="generate")
    assert cfg.recipe.effort_mix == MIX


def _pool(size: int, families=None) -> dict:
    fams = families or [{"name": "addition", "params": {"digits": 3, "ood_digits": 4}}]
    recipe = RecipeConfig(families=[_spec(f) for f in fams], size=size, test_size=6, ood_size=6)
    return build_problems(recipe).problems


def _spec(f):
    from distill_lab.stages.generate.config import FamilySpec

    return FamilySpec(name=f["name"], weight=f.get("weight", 1.0), params=f.get("params", {}))


def test_random_assignment_exact_deterministic_nested():
    mix = parse_mix("low@1+high@3")
    fams = [{"name": "addition", "params": {"digits": 3, "ood_digits": 4}},
            {"name": "multiplication", "params": {"digits": 2, "ood_digits": 3}}]
    big, small = _pool(40, fams), _pool(20, fams)
    a = assign_efforts(big, mix)
    assert a == assign_efforts(big, mix)  # deterministic
    for task in ("addition", "multiplication"):  # each family holds the shares exactly
        c = Counter(a[p.prompt_id][0] for p in big["train"] if p.task == task)
        assert c == {"low": 5, "high": 15}, (task, c)
    assert all(a[p.prompt_id] == ["high"] for s in ("test", "ood") for p in big[s])  # held out: the top effort
    b = assign_efforts(small, mix)  # a smaller size keeps the efforts its prompts had in the larger pool
    assert all(b[p.prompt_id] == a[p.prompt_id] for p in small["train"])
    assert all(len(v) == 1 for v in a.values())  # no prompt twice
    dup = assign_efforts(big, parse_mix(MIX), duplicate=True)
    assert all(dup[p.prompt_id] == ["low", "high"] for p in big["train"])


def test_difficulty_rule_short_for_easy_long_for_hard():
    pool = _pool(30)
    mix = parse_mix("low@1+medium@1+high@1")
    a = assign_efforts(pool, mix, rule="difficulty")
    carries = {e: [count_carries(p.meta["a"], p.meta["b"]) for p in pool["train"] if a[p.prompt_id] == [e]]
               for e in mix.efforts}
    assert {e: len(v) for e, v in carries.items()} == {"low": 10, "medium": 10, "high": 10}
    assert max(carries["low"]) <= min(carries["medium"]) and max(carries["medium"]) <= min(carries["high"])
    assert min(carries["low"]) < max(carries["high"])  # the pool has easy and hard problems
    facts = _pool(6, [{"name": "capital_facts"}])  # a family that states no difficulty
    with pytest.raises(ConfigError, match=r"recipe\.effort_assign: difficulty .* 'capital_facts' states none"):
        assign_efforts(facts, mix, rule="difficulty")


def test_oracle_mix_end_to_end_and_resume(tmp_path):
    ov = ["debug=fast", "recipe.size=12", "recipe.test_size=4", "recipe.ood_size=4", f"recipe.effort_mix={MIX}",
          f"run_dir={tmp_path}", "generate.progress=false"]
    res = run(compose_config(ov, stage="generate"), tmp_path)
    rows = load_rows(tmp_path / "dataset")
    by = Counter((r["split"], r["teacher"]["effort"]) for r in rows)
    assert by == {("train", "low"): 6, ("train", "high"): 6, ("test", "high"): 4, ("ood", "high"): 4}
    assert len({r["prompt_id"] for r in rows}) == len(rows)  # the same prompt never twice
    for r in rows:  # each row's trace is its own effort's
        lines = r["messages"][-1]["reasoning_content"].count("\n")
        assert (lines == 0) if r["teacher"]["effort"] == "low" else (lines >= 3)
    assert DatasetInfo.load(tmp_path / "dataset").effort == "mix(low:0.5,high:0.5)"
    per = res.summary["per_effort"]
    assert per["low"]["rows"] == 6 and per["high"]["rows"] == 14 and per["high"]["per_split"]["test"] == 4
    mix = res.summary["recipe"]["effort_mix"]
    assert mix["realised"]["train"] == {"low": 6, "high": 6} and mix["held_out_effort"] == "high"
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert "## Effort mix" in card and "## Cost and tokens per effort" in card and "| low | 6 |" in card
    again = run(compose_config(ov, stage="generate"), tmp_path)  # resumes: nothing asked twice
    assert again.summary["requests"]["resumed_from_journal"] == 20 and again.summary["requests"]["sent"] == 0
    dup = run(compose_config([*ov, "recipe.effort_mix_duplicate=true", f"run_dir={tmp_path}/dup"],
                             stage="generate"), tmp_path / "dup")
    train = [r for r in load_rows(tmp_path / "dup" / "dataset") if r["split"] == "train"]
    assert len(train) == 24 and Counter(Counter(r["prompt_id"] for r in train).values()) == {2: 12}
    assert dup.summary["per_effort"]["low"]["rows"] == 12


@pytest.fixture
def openai_fake(monkeypatch):
    from tests.fake_api.openai_server import OpenAIFake

    monkeypatch.setenv("OPENAI_API_KEY", "sk-or-test-0123456789abcdef")
    srv = OpenAIFake().start()
    yield srv
    srv.stop()


@pytest.fixture
def anthropic_fake(monkeypatch):
    from tests.fake_api.anthropic_server import AnthropicFake, State

    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State(batch_delay_s=0.1)).start()
    yield srv
    srv.stop()


def _prompt_effort(rows) -> dict[str, str]:
    return {r["messages"][0]["content"]: r["teacher"]["effort"] for r in rows}


def test_openai_compat_gets_each_rows_effort(openai_fake, tmp_path):
    res = run(gen_config("openai_compat", openai_fake.url, tmp_path / "ds", f"recipe.effort_mix={MIX}", size=6,
                         test=2, ood=0), tmp_path)
    rows = load_rows(tmp_path / "ds")
    want = _prompt_effort(rows)
    sent = {r["body"]["messages"][-1]["content"]: r["body"]["reasoning_effort"] for r in openai_fake.state.requests}
    assert sent == want and Counter(want.values()) == {"low": 3, "high": 5}
    for r in rows:  # the fake writes one reasoning line at low, six at high
        assert r["messages"][-1]["reasoning_content"].count("Step ") == (1 if r["teacher"]["effort"] == "low" else 6)
    assert res.summary["per_effort"]["high"]["output_tokens"] > res.summary["per_effort"]["low"]["output_tokens"]


@pytest.mark.parametrize("batch", [False, True])
def test_anthropic_gets_each_rows_thinking_budget(anthropic_fake, tmp_path, batch):
    cfg = gen_config("anthropic_opus45", anthropic_fake.url, tmp_path / "ds", f"recipe.effort_mix={MIX}",
                     f"teacher.batch={str(batch).lower()}", size=6, test=0, ood=0)
    res = run(cfg, tmp_path)
    rows = load_rows(tmp_path / "ds")
    want = _prompt_effort(rows)
    if batch:
        (create,) = [r["body"] for r in anthropic_fake.state.requests if r["path"] == "/v1/messages/batches"]
        bodies = [q["params"] for q in create["requests"]]
    else:
        bodies = [r["body"] for r in anthropic_fake.state.requests if r["path"] == "/v1/messages"]
    budgets = {"low": 2048, "high": 16000}
    assert len(bodies) == 6
    for b in bodies:
        effort = want[b["messages"][-1]["content"][0]["text"] if isinstance(b["messages"][-1]["content"], list)
                      else b["messages"][-1]["content"]]
        assert b["thinking"] == {"type": "enabled", "budget_tokens": budgets[effort]}
        assert b["output_config"] == {"effort": effort}
    assert Counter(want.values()) == {"low": 3, "high": 3}
    assert {r["teacher"]["budget_tokens"] for r in rows if r["teacher"]["effort"] == "low"} == {2048}
    cost = res.summary["per_effort"]
    assert cost["high"]["cost_usd"] > cost["low"]["cost_usd"] > 0  # longer thinking costs more


def test_sweep_over_mixes_parses(tmp_path):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    arg = "recipe.effort_mix=low@0.5+high@0.5,low@0.25+high@0.75,null"
    batches = BasicSweeper.split_arguments(parser.parse_overrides([arg]), None)
    jobs = [job for b in batches for job in b]
    assert len(jobs) == 3
    labels = []
    for job in jobs:
        assert "\\" not in job[0]  # the run folder (override_dirname) is named without escapes
        cfg = compose_config([*job, "student=tiny"], stage="generate")
        labels.append(parse_mix(cfg.recipe.effort_mix).label if cfg.recipe.effort_mix else cfg.teacher.effort_name)
    assert labels == ["mix(low:0.5,high:0.5)", "mix(low:0.25,high:0.75)", "medium"]
    # the quoted comma form is one value, not two
    (quoted,) = [j for b in BasicSweeper.split_arguments(parser.parse_overrides(['recipe.effort_mix="low:0.5,high:0.5"']),
                                                         None) for j in b]
    cfg = compose_config([*quoted, "student=tiny"], stage="generate")
    assert parse_mix(cfg.recipe.effort_mix).label == "mix(low:0.5,high:0.5)"
    json.dumps(labels)
