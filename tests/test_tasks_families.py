"""Built-in task families: oracle answers verify, perturbed answers do not, OOD differs by construction."""

from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_lab.tasks import BUILTIN_FAMILIES, CATEGORIES, SPLITS, family_names, get_family
from distill_lab.tasks.base import Problem
from distill_lab.tasks.knowledge import fact_base
from distill_lab.tasks.ordering import OOD_NAMES, TRAIN_NAMES

EFFORTS = ("low", "medium", "high", "xhigh", "max")


def _bump_last_int(text: str, delta: int = 1) -> str:
    nums = list(re.finditer(r"-?\d+", text))
    m = nums[-1]
    return text[:m.start()] + str(int(m.group()) + delta) + text[m.end():]


def perturb(problem: Problem, answer: str) -> list[str]:
    """Wrong answers close to the oracle's: each must be rejected by the verifier."""
    t = problem.task
    if t in ("addition", "multiplication", "word_problems"):
        return [_bump_last_int(answer), _bump_last_int(answer, -10), "The answer is unknown."]
    if t == "ordering":
        flip = answer.replace(">", "#").replace("<", ">").replace("#", "<")
        return [flip, answer.replace(problem.meta["x"], "Nobody")]
    if t == "json_record":
        obj = json.loads(answer)
        k = next(iter(obj))
        changed = {**obj, k: (obj[k] + 1) if isinstance(obj[k], int) else obj[k] + "x"}
        missing = {kk: v for kk, v in obj.items() if kk != k}
        extra = {**obj, "extra": 1}
        return [json.dumps(changed), json.dumps(missing), json.dumps(extra), "Here it is: " + answer]
    if t == "answer_line":
        words = problem.meta["words"]
        rev = ", ".join(sorted(words, reverse=True))
        return [answer.replace("Answer: ", "Result: "), f"In alphabetical order:\nAnswer: {rev}",
                answer + "\nThanks!"]
    if t == "capitals":
        other = next(c for c, cap in fact_base(40) if c != problem.reference and cap != problem.reference)
        return [f"The answer is {other}.", "I do not know."]
    if t == "house_style":
        lines = answer.splitlines()
        no_bottom = "\n".join(lines[:-2])
        two_bullets = "\n".join(ln for ln in lines if not ln.startswith("- Why"))
        return [no_bottom, two_bullets, answer.replace("In short:", "Summary:"),
                answer.replace(problem.reference, "gadget")]
    if t == "edge_cases":
        ref = problem.reference
        if ref == "no solution":
            return ["The answer is 7.", "The answer is Alice > Bob."]
        if ref.startswith("several"):
            first = ref.split(": ")[1].split(", ")[0]
            return [f"The answer is {first}.", "The answer is: no solution."]
        if ref.startswith("premise"):
            n = ref.split(": ")[1]
            return [f"The answer is {n}.", f"The answer is: the premise is wrong; the correct result is {int(n) + 1}."]
        return ["The answer is: no solution.", f"The answer is: the premise is wrong; the correct result is {ref}."
                if ref.lstrip("-").isdigit() else "The answer is: several valid answers: 1, 2."]
    raise AssertionError(f"no perturbation for {t}")


def test_registry_lists_every_family_with_a_category():
    names = family_names()
    assert set(BUILTIN_FAMILIES) <= set(names)
    cats = {get_family(n).category for n in BUILTIN_FAMILIES}
    assert cats == set(CATEGORIES)  # the five capability categories are all covered


@pytest.mark.parametrize("name", BUILTIN_FAMILIES)
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), split=st.sampled_from(SPLITS), effort=st.sampled_from(EFFORTS))
def test_oracle_answers_verify_and_perturbed_ones_do_not(name, seed, split, effort):
    fam = get_family(name)
    for p in fam.generate(split, 3, random.Random(seed)):
        reasoning, answer = fam.oracle(p, effort)
        assert reasoning.strip() and answer.strip()
        assert p.split == split and p.task == name and p.category == fam.category
        assert fam.verify(answer, p.reference), (p.prompt, answer, p.reference)
        assert fam.score(answer, p.reference, answer) == 1.0
        # a fresh instance without params verifies too (evaluation calls get_family(row["task"]))
        assert get_family(name).verify(answer, p.reference)
        for wrong in perturb(p, answer):
            assert not fam.verify(wrong, p.reference), (name, p.prompt, wrong, p.reference)


@pytest.mark.parametrize("name", BUILTIN_FAMILIES)
def test_stream_is_deterministic_and_distinct(name):
    fam = get_family(name)
    a = fam.generate("train", 20, random.Random("s"))
    b = fam.generate("train", 20, random.Random("s"))
    assert [p.prompt for p in a] == [p.prompt for p in b]
    assert len({p.prompt for p in a}) == 20
    assert [p.prompt for p in fam.generate("train", 5, random.Random("s"))] == [p.prompt for p in a[:5]]


@pytest.mark.parametrize("name", BUILTIN_FAMILIES)
def test_trace_detail_follows_effort(name):
    fam = get_family(name)
    ps = fam.generate("test", 15, random.Random(1))
    mean = {e: sum(len(fam.oracle(p, e)[0]) for p in ps) / len(ps) for e in ("low", "medium", "high")}
    assert mean["low"] < mean["medium"] < mean["high"], mean
    assert all(fam.oracle(p, "max") == fam.oracle(p, "high") for p in ps)


def _digits(p: Problem) -> int:
    return max(len(str(p.meta["a"])), len(str(p.meta["b"])))


@pytest.mark.parametrize("name", ["addition", "multiplication"])
def test_arithmetic_ood_has_more_digits(name):
    fam = get_family(name)
    train = fam.generate("train", 200, random.Random(0))
    ood = fam.generate("ood", 200, random.Random(0))
    assert max(_digits(p) for p in train) < min(_digits(p) for p in ood)
    assert {p.meta["digits"] for p in train} == {fam.digits} and {p.meta["digits"] for p in ood} == {fam.ood_digits}


def test_addition_behaviour_is_kept():
    fam = get_family("addition", digits=3, ood_digits=5)
    p = fam.generate("train", 1, random.Random("0/addition/train"))[0]
    assert p.prompt == "What is 139 + 942?" and p.reference == "1081"
    reasoning, answer = fam.oracle(p, "high")
    assert answer == "The answer is 1081."
    assert "Column 1: 9 + 2 = 11. Write 1, carry 1." in reasoning
    assert fam.oracle(p, "low")[0] == "139 + 942 = 1081."
    assert fam.extract("so it is 1,081 in total") == "1081" and fam.extract("The answer is 0.") == "0"
    with pytest.raises(ValueError, match="asked for 200 distinct train problems, only 100 exist"):
        get_family("addition", digits=1, ood_digits=2).generate("train", 200, random.Random(0))


def test_ordering_accepts_the_same_fact_stated_the_other_way():
    fam = get_family("ordering")
    assert fam.verify("The answer is Alice > Dan.", "Dan < Alice")
    assert fam.verify("So Dan < Alice.", "Dan < Alice")
    assert not fam.verify("The answer is Dan > Alice.", "Dan < Alice")
    assert not fam.verify("The answer is Alice > Bob.", "Dan < Alice")
    assert get_family("edge_cases").verify("The answer is Bob < Carol.", "Carol > Bob")


def test_ordering_ood_has_more_hops_and_unseen_names():
    fam = get_family("ordering")
    train = fam.generate("train", 100, random.Random(0))
    ood = fam.generate("ood", 100, random.Random(0))
    assert max(p.meta["hops"] for p in train) < min(p.meta["hops"] for p in ood)
    names_in = {n for p in train for n in re.findall(r"[A-Z][a-z]+", p.prompt)} - {"What"}
    names_ood = {n for p in ood for n in re.findall(r"[A-Z][a-z]+", p.prompt)} - {"What"}
    assert names_in <= set(TRAIN_NAMES) and names_ood <= set(OOD_NAMES) and not names_in & names_ood


def test_word_problems_ood_has_more_steps_and_new_templates():
    fam = get_family("word_problems")
    train = fam.generate("train", 100, random.Random(0))
    ood = fam.generate("ood", 100, random.Random(0))
    assert max(p.meta["n_steps"] for p in train) < min(p.meta["n_steps"] for p in ood)
    assert all(p.prompt.endswith("have now?") for p in train)
    assert not any("have now?" in p.prompt or " buys " in p.prompt for p in ood)
    p = train[0]  # the reference is the arithmetic of the steps
    v = p.meta["start"]
    for op, k, m in p.meta["steps"]:
        v = {"add": v + k, "sub": v - k, "mul": v * k, "box": v + k * m}[op]
    assert str(v) == p.reference


def test_format_families_ood_ask_more():
    js = get_family("json_record")
    tr, od = js.generate("train", 50, random.Random(0)), js.generate("ood", 50, random.Random(0))
    assert {p.meta["n_keys"] for p in tr} == {3} and {p.meta["n_keys"] for p in od} == {5}
    assert all(set(p.meta["asked"]) & {"pet", "colour", "year"} for p in od)
    assert not any(set(p.meta["asked"]) & {"pet", "colour", "year"} for p in tr)
    al = get_family("answer_line")
    tr, od = al.generate("train", 50, random.Random(0)), al.generate("ood", 50, random.Random(0))
    assert max(p.meta["n_words"] for p in tr) < min(p.meta["n_words"] for p in od)
    # the format is checked by parsing: a fenced JSON object passes, prose around it does not
    p = tr[0]
    assert al.verify("In order:\nAnswer: " + p.reference, p.reference)
    p = js.generate("test", 1, random.Random(0))[0]
    assert js.verify("```json\n" + p.reference + "\n```", p.reference)
    assert js.extract("Sure! " + p.reference) is None


def test_knowledge_fact_base_is_fixed_and_test_asks_trained_facts_differently():
    fam = get_family("capitals", n_facts=12)
    assert fam.facts == fact_base(12) == get_family("capitals", n_facts=12).facts
    train = fam.generate("train", 12, random.Random(0))
    assert {p.meta["country"] for p in train} == {c for c, _ in fam.facts}  # the first n_facts teach every fact
    test = fam.generate("test", 30, random.Random(5))
    assert {p.meta["country"] for p in test} <= {c for c, _ in fam.facts}
    all_train = {p.prompt for p in fam.generate("train", 96, random.Random(0))}
    assert not all_train & {p.prompt for p in test}  # other phrasings
    ood = fam.generate("ood", 20, random.Random(0))
    assert all(p.meta["direction"] == "reverse" and p.reference == p.meta["country"] for p in ood)
    with pytest.raises(ValueError, match="only 96 exist"):
        fam.generate("train", 97, random.Random(0))


def test_style_score_compares_features_with_the_teacher():
    fam = get_family("house_style")
    tr, te, od = (fam.generate(s, 10, random.Random(0)) for s in SPLITS)
    assert not {p.reference for p in tr} & {p.reference for p in te}
    assert not {p.reference for p in tr} & {p.reference for p in od}
    p = te[0]
    _, teacher = fam.oracle(p, "high")
    assert fam.score(teacher, p.reference, teacher) == 1.0
    plain = f"A {p.reference} is a useful thing that many people own."
    assert fam.score(plain, p.reference, teacher) < 0.5
    partial = "\n".join(teacher.splitlines()[:-2])  # no closing line
    assert 0.5 <= fam.score(partial, p.reference, teacher) < 1.0
    assert fam.extract(teacher) == p.reference


def test_edge_cases_mix_edge_and_control_and_ood_is_bigger():
    fam = get_family("edge_cases")
    tr = fam.generate("train", 300, random.Random(0))
    kinds = {(p.meta["kind"], p.meta["edge"]) for p in tr}
    assert {"contradiction", "multiple", "false_premise"} == {k for k, _ in kinds}
    assert {True, False} == {e for _, e in kinds}
    refs = {p.reference.split(":")[0] for p in tr}
    assert {"no solution", "several", "premise wrong"} <= refs
    od = fam.generate("ood", 300, random.Random(0))
    size = lambda ps, k, f: [p.meta[f] for p in ps if p.meta["kind"] == k]  # noqa: E731
    assert max(size(tr, "contradiction", "size")) < min(size(od, "contradiction", "size"))
    assert max(len(t) for t in size(tr, "false_premise", "terms")) < min(len(t) for t in size(od, "false_premise", "terms"))
    with pytest.raises(ValueError, match="unknown kinds"):
        get_family("edge_cases", kinds=["paradox"])


def test_unknown_family_and_bad_params_name_the_problem():
    with pytest.raises(KeyError, match="unknown task family 'division'"):
        get_family("division")
    with pytest.raises(ValueError, match="ordering"):
        get_family("ordering", min_hops=4, max_hops=3)
    with pytest.raises(ValueError, match="bad params"):
        get_family("addition", digitz=3)


def test_freeform_verifies_by_normalised_reference_and_oracle_needs_one():
    fam = get_family("freeform")
    assert fam.verify("Thinking done. The answer is **Paris.**", "paris")
    assert fam.verify("42.0", "42") and not fam.verify("The answer is 41.", "42")
    p = Problem("x", "freeform", "knowledge", "train", "Say hi", None)
    with pytest.raises(ValueError, match="has no reference"):
        fam.oracle(p, "high")


PLUGIN = '''
import random
from distill_lab.tasks.base import TaskFamily, register, effort_level


@register
class Countdown(TaskFamily):
    name = "countdown_plugin"
    category = "reasoning"

    def stream(self, split, rng):
        start = 20 if split == "ood" else 5
        for n in range(start, start + 10):
            yield self._problem(split, f"Count down from {n}. What comes last?", "1", n=n)

    def oracle(self, problem, effort):
        steps = ", ".join(str(i) for i in range(problem.meta["n"], 0, -1))
        return (steps if effort_level(effort) != "low" else "ends at 1"), "The answer is 1."

    def extract(self, text):
        return text.rstrip(".").split()[-1] if text.strip() else None
'''


def test_a_family_in_its_own_module_is_found_and_usable_in_a_recipe(tmp_path, monkeypatch):
    from distill_lab.stages.generate.config import FamilySpec, RecipeConfig
    from distill_lab.stages.generate.recipe import build_problems

    (tmp_path / "my_countdown.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DISTILL_LAB_TASK_MODULES", "my_countdown")
    assert "countdown_plugin" in family_names()
    res = build_problems(RecipeConfig(families=[FamilySpec(name="countdown_plugin"), FamilySpec(name="addition")],
                                      size=6, test_size=2, ood_size=2))
    plug = [p for p in res.problems["ood"] if p.task == "countdown_plugin"]
    assert plug and plug[0].prompt.startswith("Count down from 2")
    fam = get_family("countdown_plugin")
    assert fam.verify(fam.oracle(plug[0], "high")[1], "1")
    monkeypatch.setenv("DISTILL_LAB_TASK_MODULES", "no_such_module_xyz")
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        family_names()
