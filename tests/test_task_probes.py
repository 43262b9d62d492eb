"""The probe families (recipe=probes) and their controls: deterministic, oracle answers verify, wrong ones
do not, and each separates what it claims to (format from content, taught from untaught, announced from
unannounced, composition from length, voice from template)."""

from __future__ import annotations

import json
import random
import re

import pytest

from distill_lab.tasks import CONTROL_TASKS, PROBE_FAMILIES, get_family
from distill_lab.tasks.composition import operations
from distill_lab.tasks.edge_controls import HINTS, unannounced
from distill_lab.tasks.fact_controls import REAL_FACTS, TRAIN_TEMPLATES
from distill_lab.tasks.style_rules import CLOSE, MIN_VOICED, RULES, rule_checks

EFFORTS = ("low", "medium", "high")
ALL_TASKS = (*PROBE_FAMILIES, *[c for cs in CONTROL_TASKS.values() for c in cs])


def _bump(text: str) -> str:
    m = list(re.finditer(r"\d+", text))[-1]
    return text[:m.start()] + str(int(m.group()) + 1) + text[m.end():]


def wrong_answers(p, answer: str) -> list[str]:
    t = p.task
    if t == "composition":
        return [_bump(answer), "The answer is unknown."]
    if t == "json_fields":
        obj = json.loads(answer)
        k = next(iter(obj))
        return [json.dumps({**obj, k: obj[k] + 1 if isinstance(obj[k], int) else obj[k] + "x"}),
                json.dumps({kk: v for kk, v in obj.items() if kk != k}), "Here it is: " + answer]
    if t == "sorted_words":
        return [answer.replace("Answer: ", "Result: "),
                "Answer: " + ", ".join(sorted(p.meta["words"], reverse=True))]
    if t.startswith("capital_facts"):
        return ["The answer is Nowhere.", "I do not know."]
    if t == "style_rules":
        return ["You know, it is a thing. Have you seen one?", answer.replace(p.reference, "gadget")]
    if t.startswith("edge_checks"):
        ref = p.reference
        if ref in ("no solution",) or ref.startswith(("several", "premise")):
            return ["The answer is 7.", "The answer is Alice > Bob."]
        return ["The answer is: no solution."]
    raise AssertionError(t)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_generator_is_deterministic_and_distinct(name):
    fam = get_family(name)
    split = "ood" if name.endswith("reverse") else "test"
    a = fam.generate(split, 12, random.Random("s"))
    assert [p.prompt for p in a] == [p.prompt for p in fam.generate(split, 12, random.Random("s"))]
    assert len({p.prompt for p in a}) == 12
    assert {p.task for p in a} <= {name, *CONTROL_TASKS.get(name, ())}
    if name not in PROBE_FAMILIES:  # a control alone has no train split
        assert fam.generate("train", 0, random.Random(0)) == [] and list(fam.stream("train", random.Random(0))) == []


@pytest.mark.parametrize("name", PROBE_FAMILIES)
@pytest.mark.parametrize("split", ["train", "test", "ood"])
def test_oracle_answers_verify_and_wrong_ones_do_not(name, split):
    fam = get_family(name)
    for p in fam.generate(split, 24, random.Random(split)):
        checker = get_family(p.task)  # evaluation: get_family(row["task"]) without the recipe's params
        for effort in EFFORTS:
            reasoning, answer = fam.oracle(p, effort)
            assert reasoning.strip() and checker.verify(answer, p.reference), (p.prompt, answer)
            assert checker.score(answer, p.reference, answer) == 1.0
            assert checker.extract(answer) is not None
        for wrong in wrong_answers(p, answer):
            assert not checker.verify(wrong, p.reference), (p.task, p.prompt, wrong)


@pytest.mark.parametrize("name", PROBE_FAMILIES)
def test_trace_detail_follows_effort(name):
    fam = get_family(name)
    ps = fam.generate("ood", 20, random.Random(3))
    mean = {e: sum(len(fam.oracle(p, e)[0]) for p in ps) / len(ps) for e in EFFORTS}
    assert mean["low"] < mean["medium"] < mean["high"], mean


def test_format_probes_score_content_apart_from_format():
    fam = get_family("json_fields")
    p = fam.generate("test", 1, random.Random(0))[0]
    _, answer = fam.oracle(p, "high")
    chatty = f"Sure! Here is the record:\n```json\n{answer}\n```\nLet me know if you need more."
    assert fam.extract(chatty) is None and not fam.verify(chatty, p.reference)  # not compliant...
    assert fam.score(chatty, p.reference) == 1.0  # ...but the content is right
    pairs = "\n".join(f"{k}: {v}" for k, v in json.loads(answer).items())
    assert fam.extract(pairs) is None and fam.score(pairs, p.reference) == 1.0
    obj = json.loads(answer)
    k = next(iter(obj))
    bad = json.dumps({**obj, k: "nobody"})
    assert fam.extract(bad) is not None and fam.score(bad, p.reference) == 0.0  # compliant, wrong content

    words = get_family("sorted_words")
    p = words.generate("test", 1, random.Random(0))[0]
    ordered = sorted(p.meta["words"])
    plain = "They go: " + " then ".join(ordered) + "."
    assert words.extract(plain) is None and words.score(plain, p.reference) == 1.0
    unsorted = "Answer: " + ", ".join(p.meta["words"] if p.meta["words"] != ordered else ordered[::-1])
    assert words.extract(unsorted) is not None and words.score(unsorted, p.reference) == 0.0
    # the old families keep their combined score
    assert get_family("json_record").score(chatty, p.reference) == 0.0


def test_capital_facts_untaught_facts_never_reach_train_and_reverse_is_apart():
    fam = get_family("capital_facts", n_facts=40, untaught_every=4)
    train = fam.generate("train", 240, random.Random(0))  # every taught fact in every train phrasing
    taught = {p.meta["country"] for p in train}
    assert len(taught) == 30 and all(p.task == "capital_facts" and p.meta["direction"] == "forward" for p in train)
    test = list(fam.stream("test", random.Random(1)))
    ood = list(fam.stream("ood", random.Random(1)))
    untaught = {p.meta["country"] for p in test + ood if p.task == "capital_facts_untaught"}
    assert len(untaught) == 10 and not untaught & taught
    assert {p.meta["country"] for p in test + ood if p.task == "capital_facts"} == taught
    rev = [p for p in ood if p.task == "capital_facts_reverse"]
    assert rev and all(p.reference == p.meta["country"] and p.meta["country"] in taught for p in rev)
    assert not any(p.task == "capital_facts_reverse" for p in test)
    assert all(p.meta["direction"] == "forward" for p in ood if p.task != "capital_facts_reverse")
    cov = fam.coverage(train, [p for p in test if p.task == "capital_facts"])
    assert cov["share_taught"] == 1.0
    # the memorisation check: taught facts in the exact train prompt that first taught them (test only)
    mem = [p for p in test if p.task == "capital_facts_train_phrasing"]
    first_round = {p.prompt for p in train[:30]}
    assert {p.prompt for p in mem} == first_round and all(p.meta["in_train"] and p.meta["taught"] for p in mem)
    assert all(p.meta["template"] in TRAIN_TEMPLATES for p in mem)
    assert not any(p.task == "capital_facts_train_phrasing" for p in ood)
    held_phrasings = {p.prompt for p in test if p.task == "capital_facts"}
    assert not held_phrasings & {p.prompt for p in train}  # the held-out phrasings are never trained
    # round-robin: each task of a split gets an equal share of the first slots
    first = test[:30]
    assert {t: sum(p.task == t for p in first) for t in {p.task for p in first}} == {
        "capital_facts": 10, "capital_facts_untaught": 10, "capital_facts_train_phrasing": 10}
    assert [p.task for p in ood[:3]] == ["capital_facts", "capital_facts_untaught", "capital_facts_reverse"]

    real = get_family("capital_facts", n_facts=12, facts="real", untaught_every=3)
    ps = list(real.stream("test", random.Random(0)))
    assert {(p.meta["country"], p.meta["capital"]) for p in ps} == set(REAL_FACTS[:12])
    p = next(p for p in ps if p.meta["capital"] == "Addis Ababa") if any(
        p.meta["capital"] == "Addis Ababa" for p in ps) else ps[0]
    assert get_family(p.task).verify(real.oracle(p, "low")[1], p.reference)
    with pytest.raises(ValueError, match="facts must be"):
        get_family("capital_facts", facts="made_up")


def test_composition_chains_two_operations_in_distribution_and_three_out_of_it():
    fam = get_family("composition")
    train = fam.generate("train", 200, random.Random(0))
    test = fam.generate("test", 100, random.Random(1))
    ood = fam.generate("ood", 100, random.Random(0))
    for p in train + test:  # every in-distribution prompt composes: two chained operations, both orders
        assert operations(p.prompt) == 2 == p.meta["steps"], p.prompt
    assert {p.meta["skill"] for p in train} == {"add_then_multiply", "multiply_then_add"}
    assert all(operations(p.prompt) == 3 for p in ood) and {p.meta["skill"] for p in ood} == {"add_multiply_add"}
    for p in train + test + ood:  # the reference is the prompt's value (× read as *, precedence as written)
        assert p.reference == str(eval(p.prompt[len("What is "):-1].replace("×", "*"))), p.prompt
    for p in ood:  # every step at a trained size: a 2-digit sum, times a digit, plus a 2-digit number
        a, b, c, d = (p.meta[k] for k in "abcd")
        assert 10 <= a <= 89 and 10 <= b and a + b <= 99 and 2 <= c <= 9 and 10 <= d <= 99
    mult_add = [p for p in train if p.meta["skill"] == "multiply_then_add"]
    assert all(20 <= p.meta["a"] <= 99 and 2 <= p.meta["c"] <= 9 and 10 <= p.meta["d"] <= 99 for p in mult_add)
    # the low-effort trace still shows every step of the chain
    p = ood[0]
    assert fam.oracle(p, "low")[0].count("=") == 3


def test_style_rules_vary_the_answer_and_score_the_voice():
    fam = get_family("style_rules")
    ps = fam.generate("train", 60, random.Random(0))
    answers = [fam.oracle(p, "medium")[1] for p in ps]
    openings = {a.split()[0] + " " + a.split()[1] for a in answers}
    assert len(openings) >= 3  # not one frame
    for a in answers:
        assert all(rule_checks(a).values()), (a, rule_checks(a))
    p, a = ps[0], answers[0]
    bullets = f"- What: a {p.reference}\n- Why: it's useful"
    checks = rule_checks(bullets)
    assert not checks["prose"] and not checks["no_contractions"] and not checks["closing_question"]
    assert sum(checks.values()) / len(RULES) > 0 and fam.score(bullets, p.reference) == 0.0  # no statement in the voice
    house = get_family("house_style")
    hp = house.generate("test", 1, random.Random(0))[0]
    assert fam.score(house.oracle(hp, "high")[1], hp.reference) < 1.0  # the old template is not this voice
    # content apart from voice: the right voice about nothing fails verify, plain content passes
    empty = "You know it well. It is a thing you see. You can use it daily. Is it not nice?"
    assert fam.score(empty, p.reference) == 1.0 and not fam.verify(empty, p.reference)
    assert fam.verify(a.replace("?", "."), p.reference) and fam.score(a.replace("?", "."), p.reference) < 1.0


def test_one_template_sentence_cannot_max_out_the_voice():
    fam = get_family("style_rules")
    p = fam.generate("test", 1, random.Random(0))[0]
    a = fam.oracle(p, "medium")[1]
    assert all(rule_checks("Do you own one yourself?").values())  # every rule holds for the bare question...
    assert fam.score("Do you own one yourself?", p.reference) == 0.0  # ...and it scores nothing
    for close in CLOSE:
        assert fam.score(close, p.reference) == 0.0
    body = [x.strip() + "." for x in a.rsplit("?", 1)[0].rsplit(".", 1)[0].split(".") if x.strip()]
    assert len(body) == MIN_VOICED == 3
    assert fam.score(body[0] + " Do you own one yourself?", p.reference) == pytest.approx(1 / 3)
    assert fam.score(" ".join(body[:2]) + " Do you own one yourself?", p.reference) == pytest.approx(2 / 3)
    assert fam.score(" ".join([body[0]] * 3) + " Do you own one yourself?", p.reference) == pytest.approx(1 / 3)
    assert fam.score(a, p.reference) == 1.0
    # a contraction in one statement: that statement is out of the voice and the rule fails
    broken = a.replace(" is ", " isn't ", 1)
    assert fam.score(broken, p.reference) == pytest.approx(4 / 5 * 2 / 3)


def test_edge_checks_pair_every_held_out_item_with_its_unannounced_twin_and_low_traces_check():
    fam = get_family("edge_checks")
    train = fam.generate("train", 60, random.Random(0))
    assert all(p.task == "edge_checks" and any(h in p.prompt for h in HINTS) for p in train)
    for split in ("test", "ood"):
        held = fam.generate(split, 80, random.Random(0))
        quiet = [p for p in held if p.task == "edge_checks_unannounced"]
        loud = [p for p in held if p.task == "edge_checks"]
        assert len(quiet) == len(loud) == 40  # balanced by design, not by chance
        assert not any(h in p.prompt for p in quiet for h in HINTS)
        assert all(any(h in p.prompt for h in HINTS) for p in loud)
        for a, b in zip(held[::2], held[1::2], strict=True):  # the same item with and without the hint
            assert (a.task, b.task) == ("edge_checks", "edge_checks_unannounced")
            assert a.meta["pair_id"] == b.meta["pair_id"] and a.reference == b.reference
            assert unannounced(a.prompt) == b.prompt and a.meta["kind"] == b.meta["kind"]
        assert len({p.meta["pair_id"] for p in held}) == 40
        assert {p.meta["edge"] for p in quiet} == {True, False}  # edge cases and their look-alikes, unannounced
    for p in held:
        low = fam.oracle(p, "low")[0]
        assert low.startswith("Check:") and re.search(r"\d|>", low)
        if p.meta["kind"] == "false_premise":
            assert str(p.meta["true_sum"]) in low  # the premise is recomputed even at low effort
