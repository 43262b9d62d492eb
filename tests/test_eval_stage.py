"""End to end: the eval stage on oracle rows with the tiny student (base and distilled), then the
report stage; every headline number is recomputed here from samples.jsonl, independently of the
package's aggregation code."""

from __future__ import annotations

import json
import math
import re

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.common import run_stage
from tests.conftest import compose_config
from tests.eval_support import memorizer_dir, write_oracle_dataset


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, c - h), min(1.0, c + h)


def _rescore(output: str, reference: str) -> bool:
    """An independent scorer: the number after the last "answer is" after the last </think>."""
    if "<think>" in output and "</think>" not in output:
        return False
    answer = output.rsplit("</think>", 1)[-1]
    hits = re.findall(r"answer is\s*(-?\d+)", answer)
    return bool(hits) and hits[-1] == reference


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_e2e")
    probs = write_oracle_dataset(root / "dataset")
    cfg = compose_config(["student=tiny"], stage="eval")
    adapter = memorizer_dir(cfg.student)
    cfg = compose_config(["student=tiny", f"eval.dataset_dir={root / 'dataset'}", f"eval.adapter_dir={adapter}",
                          "eval.max_new_tokens=40", "eval.allow_truncation=true", "eval.n_samples=2", "eval.temperature=0.7",
                          "eval.bootstrap=300", "eval.progress=false", "hardware.threads=1"], stage="eval")
    res = run_stage("eval", cfg, root / "eval")
    rcfg = compose_config([f"report.eval_dirs=[{root / 'eval'}]", "report.failures_per_category=2"],
                          stage="report")
    rep = run_stage("report", rcfg, root / "report")
    return {"root": root, "probs": probs, "eval": res, "report": rep}


def test_eval_writes_metrics_samples_and_manifest(runs):
    d = runs["root"] / "eval"
    m = json.loads((d / "metrics.json").read_text())
    assert m["schema_version"] == 1 and m["prompts"] == {"test": 5, "ood": 4}
    assert set(m["models"]) == {"base", "student", "teacher"}
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["stage"] == "eval" and manifest["artifacts"]["metrics"].endswith("metrics.json")
    samples = [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]
    greedy = [s for s in samples if s["kind"] == "greedy"]
    assert len(greedy) == 3 * 9  # 3 models x 9 held-out prompts
    assert len([s for s in samples if s["kind"] == "sample" and s["model"] == "student"]) == 2 * 9
    # the distilled student says its memorized answer (thinking and all) and stops at end of turn
    st = [s for s in greedy if s["model"] == "student"]
    assert all(s["output"] == "<think>\nok\n</think>\n\nThe answer is 1023." for s in st)
    assert all(not s["runaway"] and s["extracted"] == "1023" for s in st)


def test_numbers_recomputed_independently(runs):
    d = runs["root"] / "eval"
    m = json.loads((d / "metrics.json").read_text())
    samples = [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]
    acc = {}
    for model in ("base", "student", "teacher"):
        for split in ("test", "ood"):
            rs = [s for s in samples if s["kind"] == "greedy" and s["model"] == model and s["split"] == split]
            k = sum(_rescore(s["output"], s["reference"]) for s in rs)
            assert k == sum(s["correct"] for s in rs), (model, split)
            block = m["models"][model]["splits"][split]
            assert (block["n"], block["correct"]) == (len(rs), k)
            assert block["accuracy"] == pytest.approx(k / len(rs))
            assert block["accuracy_ci"] == pytest.approx(list(_wilson(k, len(rs))), abs=1e-6)
            acc[model, split] = k / len(rs)
    # known in advance: the student is right exactly where the reference is 1023; the teacher's first
    # ood answer was made wrong; the random-init base is right nowhere
    assert acc["student", "test"] == pytest.approx(2 / 5) and acc["student", "ood"] == pytest.approx(1 / 4)
    assert acc["teacher", "test"] == 1.0 and acc["teacher", "ood"] == pytest.approx(3 / 4)
    assert acc["base", "test"] == 0.0
    assert m["models"]["student"]["splits"]["test"]["accuracy"] > m["models"]["base"]["splits"]["test"]["accuracy"]
    for split in ("test", "ood"):
        ret = m["retention"]["student"]["splits"][split]["all"]
        assert ret["value"] == pytest.approx(acc["student", split] / acc["teacher", split])
        assert ret["ci"][0] <= ret["value"] <= ret["ci"][1]
        gain = m["gain"]["splits"][split]["all"]
        assert gain["value"] == pytest.approx(acc["student", split] - acc["base", split])
    # pass@2 over the two sampled answers, per prompt, from the samples themselves
    sampled = [s for s in samples if s["kind"] == "sample" and s["model"] == "student" and s["split"] == "test"]
    per_prompt: dict[str, list[bool]] = {}
    for s in sampled:
        per_prompt.setdefault(s["prompt_id"], []).append(_rescore(s["output"], s["reference"]))
    p2 = sum(any(v) for v in per_prompt.values()) / len(per_prompt)  # n = k = 2: any correct
    assert m["models"]["student"]["splits"]["test"]["pass_at_k"]["2"] == pytest.approx(p2)
    # the teacher's outputs are the rows' assistant turns, lengths counted with the student's tokenizer
    assert m["models"]["teacher"]["splits"]["test"]["lengths"]["output_tokens"] > 40
    assert m["models"]["student"]["splits"]["test"]["format"]["compliant"] == 1.0
    assert m["models"]["base"]["splits"]["test"]["runaway_share"] == 1.0


def test_report_shows_the_same_numbers(runs):
    rd = runs["root"] / "report"
    m = json.loads((runs["root"] / "eval" / "metrics.json").read_text())
    rep = json.loads((rd / "report.json").read_text())
    (run,) = rep["runs"]
    for split in ("test", "ood"):
        for model in ("base", "student", "teacher"):
            assert run["accuracy"][split][model]["accuracy"] == m["models"][model]["splits"][split]["accuracy"]
        assert run["retention"][split]["reasoning"]["value"] == pytest.approx(
            m["retention"]["student"]["splits"][split]["categories"]["reasoning"]["value"])
    md = (rd / "report.md").read_text()
    assert "| test | 5 | 0.0%" in md and "40.0%" in md and "100.0%" in md  # base, student, teacher on test
    assert "| ood | 4 |" in md and "75.0%" in md and "25.0%" in md
    assert "Novel reasoning: 40%–60%" in md  # the seed's figure beside ours
    # failures: the student's wrong answers with the teacher's answer beside them
    assert run["failures"] and all(f["model"] == "student" and f["extracted"] == "1023" for f in run["failures"])
    assert len([f for f in run["failures"] if f["split"] == "test"]) == 2  # capped per category and split
    assert all(f["teacher_answer"].startswith("The answer is") for f in run["failures"])
    assert "### Example failures" in md and "teacher (correct)" in md
    for p in run["plots"]:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert {p.split("/")[-1].split("_")[0] for p in run["plots"]} == {"accuracy", "retention"}


def test_eval_and_report_config_errors(tmp_path):
    cfg = compose_config(["student=tiny"], stage="eval")
    with pytest.raises(ConfigError, match="eval.dataset_dir"):
        run_stage("eval", cfg, tmp_path / "e")
    with pytest.raises(ConfigError, match="eval.temperature"):
        compose_config(["student=tiny", "eval.n_samples=4"], stage="eval")
    with pytest.raises(ConfigError, match="report.eval_dirs"):
        run_stage("report", compose_config([], stage="report"), tmp_path / "r")
    cfg = compose_config([f"report.eval_dirs=[{tmp_path}]"], stage="report")
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        run_stage("report", cfg, tmp_path / "r")


def test_lora_student_and_its_base_share_weights_but_not_outputs(tmp_path):
    """With a peft adapter the base is evaluated with the adapter disabled: its outputs must equal those
    of the base loaded on its own, and differ from the adapted student's."""
    import torch
    from peft import LoraConfig, get_peft_model

    from distill_lab.students import load_student

    write_oracle_dataset(tmp_path / "dataset")
    common = ["student=tiny", f"eval.dataset_dir={tmp_path / 'dataset'}", "eval.max_new_tokens=8", "eval.allow_truncation=true",
              "eval.progress=false", "eval.bootstrap=20", "eval.max_prompts=2", "hardware.threads=1"]
    cfg = compose_config(common, stage="eval")
    base, _ = load_student(cfg.student)
    torch.manual_seed(0)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    for name, prm in lora.named_parameters():  # a large random adapter, so outputs visibly change
        if "lora_B" in name:
            torch.nn.init.normal_(prm, std=1.0)
    lora.save_pretrained(str(tmp_path / "adapter"))
    run_stage("eval", compose_config([*common, f"eval.adapter_dir={tmp_path / 'adapter'}"], stage="eval"),
              tmp_path / "with_adapter")
    run_stage("eval", cfg, tmp_path / "base_only")

    def greedy(d, model):
        rows = [json.loads(x) for x in (tmp_path / d / "samples.jsonl").read_text().splitlines()]
        return {r["prompt_id"]: r["output"] for r in rows if r["model"] == model and r["kind"] == "greedy"}

    assert greedy("with_adapter", "base") == greedy("base_only", "base")
    assert greedy("with_adapter", "student") != greedy("with_adapter", "base")
    assert len(greedy("base_only", "base")) == 4  # max_prompts=2 per split, test and ood
    m = json.loads((tmp_path / "base_only" / "metrics.json").read_text())
    assert "student" not in m["models"] and m["gain"] is None and set(m["retention"]) == {"base"}


def test_generation_precision_choice():
    from distill_lab.stages.evaluate.placement import use_bf16

    # CPU: bf16-mixed training precision does not switch eval to autocast unless asked
    assert not use_bf16(compose_config(["student=tiny", "hardware=cpu"], stage="eval"))
    assert use_bf16(compose_config(["student=tiny", "eval.precision=bf16"], stage="eval"))
    assert not use_bf16(compose_config(["student=tiny", "hardware=gpu1", "eval.precision=fp32"], stage="eval"))
    with pytest.raises(ConfigError, match="eval.precision"):
        compose_config(["student=tiny", "eval.precision=fp8"], stage="eval")
