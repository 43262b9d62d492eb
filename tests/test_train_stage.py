"""The train stage on the tiny student, in this process: artifacts, summary, packing, grad accumulation,
resume exactness, merged export."""

from __future__ import annotations

import json
import os

import pytest
import torch

from distill_lab.students import load_student
from tests.conftest import compose_config
from tests.train_support import losses, make_dataset, step_log, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("train_data"), size=32)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("train_run")
    res = train(dataset, run, "train.max_steps=12", "train.batch_size=4", "optimizer.lr=3e-3",
                "train.val_every_n_steps=6", "data.val_fraction=0.125", "train.export_merged=true")
    return run, res


def test_stage_writes_adapter_log_and_honest_summary(trained):
    run, res = trained
    s = res.summary
    assert s["steps"] == 12 and s["steps_this_run"] == 12
    assert s["rows"]["train"] == 28 and s["rows"]["val"] == 4  # 12.5 % of 32 held out
    assert s["final_loss"] < s["first_loss"] - 0.3, s  # it learns
    assert s["masked_label_counts"]["supervised"] > 0 and s["masked_label_counts"]["masked"] > 0
    log = step_log(run)
    train_lines = [r for r in log if "loss" in r]
    assert [r["step"] for r in train_lines] == list(range(1, 13))
    assert s["supervised_tokens"] == sum(r["supervised_tokens"] for r in train_lines)
    assert all(0 <= r["padding_share"] < 1 and r["grad_norm"] > 0 and r["lr"] > 0 for r in train_lines)
    assert len([r for r in log if "val_loss" in r]) == 2  # every 6 steps
    assert s["val_loss"] is not None and s["val_loss"] < 6
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["artifacts"]["adapter"] == str(run / "adapter")
    assert (run / "adapter" / "adapter_config.json").is_file()


def test_adapter_reloads_and_changes_the_student(trained, dataset):
    run, _ = trained
    cfg = compose_config(["student=tiny"], stage="eval").student
    base, tok = load_student(cfg)
    tuned, _ = load_student(cfg, adapter_dir=str(run / "adapter"))
    ids = torch.tensor([tok("<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n",
                            add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        diff = (base(input_ids=ids).logits - tuned(input_ids=ids).logits).abs().max()
    assert diff > 1e-2


def test_merged_export_matches_base_plus_adapter(trained):
    from transformers import AutoModelForCausalLM

    run, res = trained
    assert res.artifacts["merged"] == str(run / "merged")
    merged = AutoModelForCausalLM.from_pretrained(run / "merged")
    assert not hasattr(merged, "peft_config")
    cfg = compose_config(["student=tiny"], stage="eval").student
    tuned, tok = load_student(cfg, adapter_dir=str(run / "adapter"))
    ids = torch.tensor([tok("<|im_start|>user\nWhat is 7 + 8?<|im_end|>\n", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        a, b = merged(input_ids=ids).logits, tuned(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())


def test_packed_padding_free_and_padded_give_the_same_loss_per_step(dataset, tmp_path):
    runs = {"padded": ("data.packing=false", "data.padding_free=false"),
            "free": ("data.packing=false", "data.padding_free=true"),
            "pack": ("data.packing=true", "data.max_length=512")}
    for name, over in runs.items():
        train(dataset, tmp_path / name, "train.max_steps=5", "train.batch_size=8", *over)
    ref = losses(tmp_path / "padded")
    assert len(ref) == 5
    for name in ("free", "pack"):
        got = losses(tmp_path / name)
        assert len(got) == 5
        for x, y in zip(ref, got, strict=True):
            assert abs(x - y) / x < 0.01, (name, ref, got)
    share = {n: [r["padding_share"] for r in step_log(tmp_path / n) if "loss" in r] for n in runs}
    assert all(0 < s < 1 for s in share["padded"])  # the padding share is measured and logged for each step
    assert share["free"] == [0.0] * 5  # padding-free batches have no padding at all


def test_adamw_8bit_trains_on_cpu_with_8bit_state(dataset, tmp_path):
    common = ("student.adapter=full", "train.max_steps=4", "train.batch_size=4", "optimizer.lr=1e-3")
    train(dataset, tmp_path / "fp32", *common)
    train(dataset, tmp_path / "8bit", *common, "optimizer=adamw_8bit", "optimizer.warmup_steps=0",
          "train.checkpoint_every_n_steps=4")
    ck = torch.load(tmp_path / "8bit" / "checkpoints" / "step-000004.ckpt", weights_only=False)
    # bitsandbytes keeps the quantized moments under its own key in the saved state
    state = [s.get("__bnb_optimizer_quant_state__", s) for s in ck["optimizer_states"][0]["state"].values()]
    assert any(s["state1"].dtype == torch.uint8 and s["state2"].dtype == torch.uint8 for s in state)
    a, b = losses(tmp_path / "fp32"), losses(tmp_path / "8bit")
    assert a[0] == pytest.approx(b[0], rel=1e-6)  # same start
    assert b[-1] < b[0]  # it trains
    assert max(abs(x - y) / x for x, y in zip(a, b, strict=True)) < 0.05, (a, b)  # and tracks fp32 AdamW


def test_grad_accumulation_weights_every_token_equally(dataset, tmp_path):
    # 1 micro-batch of 8 rows == 4 micro-batches of 2 rows: same rows per step, same token-normalised loss
    train(dataset, tmp_path / "b8", "train.max_steps=3", "train.batch_size=8", "train.grad_accum=1")
    train(dataset, tmp_path / "b2x4", "train.max_steps=3", "train.batch_size=2", "train.grad_accum=4")
    a, b = losses(tmp_path / "b8"), losses(tmp_path / "b2x4")
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4, (a, b)
    ga = [r["grad_norm"] for r in step_log(tmp_path / "b8")]
    gb = [r["grad_norm"] for r in step_log(tmp_path / "b2x4")]
    assert max(abs(x - y) / x for x, y in zip(ga, gb, strict=True)) < 1e-3, (ga, gb)


def test_resume_auto_continues_to_the_same_result(dataset, tmp_path):
    ref = train(dataset, tmp_path / "ref", "train.max_steps=8", "train.batch_size=4", "optimizer.lr=3e-3")
    run = tmp_path / "cut"
    train(dataset, run, "train.max_steps=8", "train.batch_size=4", "optimizer.lr=3e-3",
          "train.checkpoint_every_n_steps=3")
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["step-000003.ckpt", "step-000006.ckpt"]
    (run / "checkpoints" / "step-000006.ckpt").unlink()  # as if the run had died after step 3..5
    (run / "checkpoints" / "step-000007.ckpt").write_bytes(b"cut short by a kill")  # unreadable: skipped
    res = train(dataset, run, "train.max_steps=8", "train.batch_size=4", "optimizer.lr=3e-3",
                "train.checkpoint_every_n_steps=3", "train.resume=auto")
    assert res.summary["resumed_from"].endswith("step-000003.ckpt")
    assert res.summary["steps_this_run"] == 5 and res.summary["steps"] == 8
    assert abs(res.summary["final_loss"] - ref.summary["final_loss"]) < 1e-6
    assert [r["step"] for r in step_log(run)] == list(range(1, 9))  # the log is continued, not duplicated
    assert max(abs(a - b) for a, b in zip(losses(run), losses(tmp_path / "ref"), strict=True)) < 1e-6
    ck = torch.load(run / "checkpoints" / "step-000003.ckpt", weights_only=False)
    assert all("lora_" in k for k in ck["state_dict"])  # adapters: only trainable weights are checkpointed


def test_full_fine_tuning_trains_every_weight(dataset, tmp_path):
    res = train(dataset, tmp_path / "full", "student.adapter=full", "train.max_steps=3", "train.batch_size=4")
    assert (tmp_path / "full" / "adapter" / "config.json").is_file()
    cfg = compose_config(["student=tiny", "student.adapter=full"], stage="eval").student
    tuned, _ = load_student(cfg, adapter_dir=res.artifacts["adapter"])
    base, _ = load_student(compose_config(["student=tiny"], stage="eval").student)
    emb_t = tuned.get_input_embeddings().weight
    emb_b = base.get_input_embeddings().weight
    assert (emb_t - emb_b).abs().max() > 0  # embeddings moved too: not an adapter


def test_missing_dataset_dir_names_the_field(tmp_path):
    from distill_lab.errors import ConfigError
    from distill_lab.stages.common import run_stage

    cfg = compose_config(["student=tiny", "hardware=cpu_fp32"], stage="train")
    with pytest.raises(ConfigError, match="train.dataset_dir"):
        run_stage("train", cfg, tmp_path)


def test_summary_counts_the_students_parameters_and_names_the_machine(trained):
    """What the report's FLOPs estimate reads (6 x params_total x supervised tokens) and the machine."""
    from safetensors import safe_open

    run, res = trained
    s = res.summary
    with safe_open(str(run / "adapter" / "adapter_model.safetensors"), "pt") as f:
        saved = sum(f.get_tensor(k).numel() for k in f.keys())
    assert s["params_trainable"] == saved  # the adapter is exactly what trained
    assert s["params_total"] > s["params_trainable"] > 0
    assert s["machine"].endswith(f"{os.cpu_count()} cores")
    assert json.loads((run / "manifest.json").read_text())["summary"]["params_total"] == s["params_total"]
