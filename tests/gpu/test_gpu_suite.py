"""The GPU suite (``make test-gpu``; one H100/H200-class GPU, a few minutes): QLoRA on a random-init
Qwen3-0.6B-shaped student, the varlen attention backends, loss parity across batch layouts, gradient
checkpointing, the loss's memory at 16k tokens, 12 training steps with throughput and MFU, and FSDP2 on
one GPU. Each test writes what it measured into the JSON report (``conftest.py``, rewritten after every
test) before it asserts; every check holds a measurement to a bound that a regression would cross. Bounds
marked "provisional" were set from estimates before the suite first ran on a GPU: tighten them to the
first run's figures (benchmarks/README.md).
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata as md
import os
import platform
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.gpu.support import (
    ARCH,
    DEVICE,
    ON_GPU,
    build_student_dir,
    cosine,
    cuda_only,
    examples,
    free_port,
    gpu_suite,
    rel_err,
    sizes,
    to_device,
    train_config,
)

pytestmark = gpu_suite

H200_BF16_DENSE = 989.4e12  # FLOP/s, datasheet (SXM); the suite also measures a bf16 matmul
MATMUL_FLOOR_TFLOPS = 400  # an H100/H200 bf16 8192^3 matmul; ~790 measured on this workplace's H200
MFU_FLOOR = 0.05  # provisional: end-to-end QLoRA training FLOPs / the measured matmul rate
PEAK_MEM_CEILING_GIB = 8  # provisional: 12 steps at ~24k tokens; full fp32 logits alone would be 13.9 GiB
WHEELHOUSE_PINS = Path(__file__).with_name("wheels.txt")


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    return build_student_dir(tmp_path_factory.mktemp("gpu_student"))


def _setup(path, **kw):
    """The student as the train stage prepares it (``stages/train/run.py::_setup_model``), on this rank's device."""
    from distill_lab.stages.train.run import _setup_model
    from distill_lab.stages.train.strategy import effective_precision

    torch.manual_seed(0)  # the same LoRA initialisation for every load
    cfg = train_config(path, **kw)
    model, tok, backend, _ = _setup_model(cfg, effective_precision(cfg.hardware))
    _BACKENDS[id(model)] = backend
    return cfg, model, tok


_BACKENDS: dict[int, object] = {}  # the backend each _setup model was prepared with (backends/select.py)


def _lora_grads(model) -> torch.Tensor:
    return torch.cat([p.grad.detach().float().flatten() for n, p in model.named_parameters()
                      if p.requires_grad and "lora_" in n])


def _autocast():
    return torch.autocast("cuda", dtype=torch.bfloat16) if ON_GPU else torch.autocast("cpu", enabled=False)


# ------------------------------------------------------------------------------------ environment
def test_environment(report):
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           **{p: _version(p) for p in ("transformers", "peft", "lightning", "bitsandbytes", "flash-attn",
                                       "triton", "hydra-core", "omegaconf")}}
    from distill_lab.backends.cuda.varlen import choose_backend

    env["varlen_backend"] = choose_backend(DEVICE)
    if ON_GPU:
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   gpus_visible=torch.cuda.device_count())
        a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        for _ in range(3):
            a @ b
        times = []
        for _ in range(10):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            a @ b
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e) / 1e3)
        env["bf16_matmul_tflops"] = round(2 * 8192**3 / sorted(times)[len(times) // 2] / 1e12, 1)
    report["environment"] = env
    site = os.environ.get("DISTILL_LAB_GPU_SITE")  # set by `make test-gpu`: the wheelhouse's install folder
    if site:  # the pinned wheels are what this run imports, from the folder setup.sh installed them into
        pins = dict(line.split()[0].split("==") for line in WHEELHOUSE_PINS.read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
        env["wheelhouse"] = pins
        assert {p: _version(p) for p in pins} == pins, env
        for mod in ("bitsandbytes", "hydra", "omegaconf", "antlr4"):
            assert Path(site).resolve() in Path(importlib.import_module(mod).__file__).resolve().parents, mod
    if ON_GPU:  # the card is the one the suite's bounds were set for, and runs at its rate
        assert env["varlen_backend"] in ("flash", "flex"), env  # not the [N, N]-mask fallback
        assert env["bf16_matmul_tflops"] >= MATMUL_FLOOR_TFLOPS, env
    elif not site:
        pytest.skip("recorded only: no CUDA device and not run by `make test-gpu` (no wheelhouse to check)")


# ------------------------------------------------------------------------------------- QLoRA load
def test_qlora_student_loads_4bit_bf16_storage_with_fp32_lora_on_this_rank_device(report, student_dir):
    import bitsandbytes as bnb

    _, model, _ = _setup(student_dir)
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    devices = {str(p.device) for p in model.parameters()}
    got = {"linear4bit_modules": len(four_bit), "storage_dtypes": sorted({str(m.weight.dtype) for m in four_bit}),
           "lora_tensors": len(lora), "lora_dtypes": sorted({str(p.dtype) for p in lora.values()}),
           "lora_params": sum(p.numel() for p in lora.values()), "devices": sorted(devices),
           "attention": model.get_base_model().config._attn_implementation}
    if ON_GPU:
        got["allocated_gib_after_load"] = round(torch.cuda.memory_allocated() / 2**30, 2)
    report["qlora_load"] = got
    assert len(four_bit) == 7 * ARCH["num_hidden_layers"]  # q, k, v, o, gate, up, down of every layer
    assert got["storage_dtypes"] == ["torch.bfloat16"]
    assert lora and all("lora_" in n for n in lora) and got["lora_dtypes"] == ["torch.float32"]
    assert devices == ({"cuda:0"} if ON_GPU else {"cpu"})
    if ON_GPU:
        assert got["attention"].startswith("distill_varlen_")


# ------------------------------------------------------------------------------- attention parity
def _backends():
    from distill_lab.backends.cuda.varlen import BACKENDS, available

    return [b for b in BACKENDS if available(b, DEVICE)]


def _split(total: int, rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cuts = torch.randperm(total - 1, generator=g)[:rows - 1] + 1
    return torch.cat([torch.tensor([0]), cuts.sort().values, torch.tensor([total])]).to(torch.int32)


@pytest.mark.parametrize("rows", [2, 16, 64])
def test_varlen_attention_bf16_matches_an_fp32_per_row_reference(report, rows):
    from distill_lab.backends.cuda import varlen

    n, hq, hk, d = sizes((8192, 16, 8, 128), (512, 4, 2, 16))
    cu = _split(n, rows, seed=rows).to(DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(rows)
    q, k, v = (torch.randn(1, h, n, d, device=DEVICE, generator=g, dtype=torch.bfloat16) for h in (hq, hk, hk))
    w = torch.randn(1, n, hq, d, device=DEVICE, generator=g)
    ref_in = [x.float().requires_grad_() for x in (q, k, v)]
    ref = torch.cat([F.scaled_dot_product_attention(*(x[:, :, a:b] for x in ref_in), is_causal=True, enable_gqa=True,
                                                    scale=d ** -0.5)
                     for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)], dim=2).transpose(1, 2)
    ref_grads = torch.autograd.grad((ref * w).sum(), ref_in)
    module = torch.nn.Module().train()
    out_all = {}
    for backend in _backends():
        backward = ON_GPU or backend == "sdpa"  # flex attention has no backward on CPU
        xs = [x.clone().requires_grad_(backward) for x in (q, k, v)]
        t0 = time.perf_counter()
        with _autocast():  # as the model calls it in training: its scaling, under autocast (no extra compile)
            out, _ = varlen._make(backend)(module, *xs, None, scaling=d ** -0.5, cu_seq_lens_q=cu,
                                           max_length_q=int((cu[1:] - cu[:-1]).max()))
        res = {"out_rel_err": rel_err(out, ref), "finite": bool(torch.isfinite(out).all())}
        if backward:
            grads = torch.autograd.grad((out.float() * w).sum(), xs)
            res.update({f"d{name}_rel_err": rel_err(a, b) for name, a, b in zip("qkv", grads, ref_grads, strict=True)})
        if ON_GPU:
            torch.cuda.synchronize()
        res["seconds_incl_compile"] = round(time.perf_counter() - t0, 3)
        out_all[backend] = res
    report.setdefault("attention_parity", {})[f"{rows}_rows_of_{n}_tokens"] = out_all
    for backend, res in out_all.items():
        assert res["finite"], backend
        assert res["out_rel_err"] < 1e-2, (backend, res)  # bf16 operands: 1e-3..1e-2
        for key in ("dq_rel_err", "dk_rel_err", "dv_rel_err"):
            if key in res:
                assert res[key] < 2e-2, (backend, key, res)


# ------------------------------------------------------------ layouts and gradient checkpointing
@pytest.fixture(scope="class")
def parity_model(student_dir):
    """One student for the two parity tests, released after them (so later memory figures exclude it)."""
    yield _setup(student_dir)
    gc.collect()
    if ON_GPU:
        torch.cuda.empty_cache()


def _loss_and_grads(model, batch):
    from distill_lab.backends.forward import token_loss_sum

    model.zero_grad(set_to_none=True)
    with _autocast():
        s, n = token_loss_sum(model, to_device(batch, DEVICE))
    s.backward()
    return float(s.detach()) / n, _lora_grads(model), n


class TestParity:
    """Batch layouts and gradient checkpointing on one student (``parity_model``, released after them)."""

    def test_padded_padding_free_and_packed_batches_give_the_same_loss_and_lora_gradients(self, report, parity_model):
        from distill_lab.stages.train.datamodule import collate

        cfg, model, tok = parity_model
        exs = examples(*sizes((16, 200, 1000), (6, 20, 60)), seed=1)
        pad = int(tok.pad_token_id)
        got = {}
        for layout in ("padded", "padding_free", "packed"):
            batch = collate(exs, layout, pad, sizes(2048, 128))
            loss, grads, n = _loss_and_grads(model, batch)
            got[layout] = {"loss": loss, "targets": n, "shape": list(batch["input_ids"].shape), "grads": grads}
        base = got["padded"]
        res = {k: {"loss": v["loss"], "targets": v["targets"], "shape": v["shape"],
                   "loss_rel_diff_vs_padded": abs(v["loss"] - base["loss"]) / abs(base["loss"]),
                   "lora_grad_cosine_vs_padded": cosine(v["grads"], base["grads"])} for k, v in got.items()}
        report["layout_parity"] = res
        for k, v in res.items():
            assert v["targets"] == base["targets"], k
            assert v["loss_rel_diff_vs_padded"] < 5e-3, (k, v)
            assert v["lora_grad_cosine_vs_padded"] > 0.99, (k, v)

    def test_gradient_checkpointing_on_and_off_give_the_same_loss_and_gradients(self, report, parity_model):
        from distill_lab.stages.train.packing import pack_batch

        cfg, model, tok = parity_model
        batch = pack_batch(examples(*sizes((16, 200, 1000), (6, 20, 60)), seed=2), int(tok.pad_token_id), sizes(4096, 128))
        off_loss, off_grads, _ = _loss_and_grads(model, batch)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        try:
            on_loss, on_grads, _ = _loss_and_grads(model, batch)
        finally:
            model.gradient_checkpointing_disable()
        res = {"loss_off": off_loss, "loss_on": on_loss, "loss_rel_diff": abs(on_loss - off_loss) / abs(off_loss),
               "lora_grad_cosine": cosine(on_grads, off_grads), "lora_grad_rel_err": rel_err(on_grads, off_grads)}
        report["gradient_checkpointing"] = res
        assert res["loss_rel_diff"] < 1e-6, res
        assert res["lora_grad_cosine"] > 0.9999 and res["lora_grad_rel_err"] < 1e-2, res


# ---------------------------------------------------------------------------------- loss memory
@cuda_only
def test_loss_peak_memory_at_16k_tokens_is_one_chunk(report):
    from distill_lab.backends.loss import DEFAULT_CHUNK, linear_cross_entropy_sum

    n, hsize, v = 16384, 2560, 151936  # Qwen3-4B's head
    g = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(n, hsize, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
    w = torch.randn(v, hsize, device="cuda", dtype=torch.bfloat16, generator=g) * 0.02
    t = torch.randint(0, v, (n,), device="cuda", generator=g)

    def peak(fn):
        h.grad = None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        loss = fn()
        loss.backward()
        torch.cuda.synchronize()
        return float(loss.detach()), torch.cuda.max_memory_allocated() - base, time.perf_counter() - t0, h.grad.clone()

    peak(lambda: linear_cross_entropy_sum(h, w, t))  # warm-up
    loss, mem, secs, grad = peak(lambda: linear_cross_entropy_sum(h, w, t))
    ref_loss, ref_mem, ref_secs, ref_grad = peak(lambda: F.cross_entropy(F.linear(h, w).float(), t, reduction="sum"))
    res = {"tokens": n, "hidden": hsize, "vocab": v, "chunk": DEFAULT_CHUNK, "chunked_peak_gib": mem / 2**30,
           "chunked_seconds": secs, "plain_peak_gib": ref_mem / 2**30, "plain_seconds": ref_secs,
           "loss_rel_diff": abs(loss - ref_loss) / abs(ref_loss), "grad_cosine": cosine(grad, ref_grad)}
    report["loss_memory"] = res
    bound = DEFAULT_CHUNK * v * (4 + 2 + 2) + 2 * n * hsize * 2 + 64 * 2**20
    assert mem <= bound, res
    assert secs <= 3 * ref_secs, res  # the chunks' recompute costs time, not a multiple of the plain loss's
    assert res["loss_rel_diff"] < 1e-3 and res["grad_cosine"] > 0.999, res


# --------------------------------------------------------------------------------- end to end
def _flops_per_step(model, rows_lengths, rows_supervised) -> dict:
    """4 x N_base (forward + input gradients of the frozen base) + 6 x N_lora per token, the head on
    supervised tokens only, plus causal attention: per layer 2 matmuls x 2 FLOPs x heads x head_dim per
    (query, visible key) pair, x 3 for forward and backward."""
    c = model.get_base_model().config
    hq, hk, d, hsize, inter = (c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.hidden_size,
                               c.intermediate_size)
    body = c.num_hidden_layers * (hsize * hq * d * 2 + hsize * hk * d * 2 + 3 * hsize * inter)
    head = c.vocab_size * hsize
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tokens, sup = sum(rows_lengths), sum(rows_supervised)
    pairs = sum(n * (n + 1) // 2 for n in rows_lengths)
    attn = 3 * c.num_hidden_layers * 2 * 2 * hq * d * pairs
    return {"flops": 4 * body * tokens + 4 * head * sup + 6 * lora * tokens + attn, "n_base_matmul": body,
            "n_head": head, "n_lora": lora, "tokens": tokens, "supervised": sup}


def test_twelve_training_steps_end_to_end(report, student_dir, tmp_path):
    import lightning as L

    from distill_lab.stages.train.datamodule import SFTDataModule, n_targets
    from distill_lab.stages.train.module import SFTModule
    from distill_lab.stages.train.packing import IGNORE
    from distill_lab.stages.train.strategy import trainer_kwargs

    gc.collect()
    if ON_GPU:  # nothing else resident: the peak below is this run's alone
        torch.cuda.empty_cache()
        resident = torch.cuda.memory_allocated()
        assert resident < 256 * 2**20, f"{resident / 2**20:.0f} MiB still allocated before the run"
    steps = 12
    rows, lo, hi, max_len = sizes((16, 512, 1536, 8192), (4, 20, 60, 128))
    cfg, model, tok = _setup(student_dir, gradient_checkpointing=True, batch_size=rows, max_steps=steps,
                             max_length=max_len)
    exs = examples(rows * steps, lo, hi, seed=3)
    dm = SFTDataModule(exs, [], batch_size=rows, grad_accum=1, total_steps=steps, seed=0, pad_id=int(tok.pad_token_id),
                       layout="packed", max_length=max_len)
    module = SFTModule(cfg, model, total_steps=steps, backend=_BACKENDS[id(model)],
                       step_log=tmp_path / "train_log.jsonl")
    trainer = L.Trainer(**trainer_kwargs(cfg.hardware), max_steps=steps, max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0)
    if ON_GPU:
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=dm)
    hist = [h for h in module.history if "loss" in h]
    timed = hist[1:]  # the first step includes compilation and warm-up
    flops = [_flops_per_step(model, [len(exs[i]) for i in dm.schedule.step_rows(s)],
                             [n_targets(exs[i]) for i in dm.schedule.step_rows(s)]) for s in range(steps)]
    secs = sum(h["time_s"] for h in timed)
    achieved = sum(f["flops"] for f in flops[1:]) / secs
    env = report.get("environment", {})
    res = {"steps": len(hist), "losses": [h["loss"] for h in hist],
           "supervised_tokens_per_s": sum(h["supervised_tokens"] for h in timed) / secs,
           "tokens_per_step": flops[0]["tokens"], "peak_mem_gib": max(h["peak_mem_mb"] for h in hist) / 1024,
           "achieved_tflops": achieved / 1e12, "flop_count": {k: v for k, v in flops[0].items() if k != "flops"},
           "mfu_vs_datasheet_989": achieved / H200_BF16_DENSE, "attention": str(model.get_base_model().config._attn_implementation),
           "gradient_checkpointing": True, "precision": cfg.hardware.precision}
    if env.get("bf16_matmul_tflops"):
        res["mfu_vs_measured_matmul"] = achieved / (env["bf16_matmul_tflops"] * 1e12)
    report["end_to_end"] = res
    assert len(hist) == steps
    # every example trained on once: the supervised tokens counted from the labels themselves
    assert sum(h["supervised_tokens"] for h in hist) == sum(
        sum(1 for x in e.labels[1:] if x != IGNORE) for e in exs), res
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    assert hist[-1]["loss"] < hist[0]["loss"], res["losses"]  # 64 token ids: learnable in a few steps
    if ON_GPU:
        assert res["peak_mem_gib"] <= PEAK_MEM_CEILING_GIB, res
        assert res.get("mfu_vs_measured_matmul", res["mfu_vs_datasheet_989"]) >= MFU_FLOOR, res


# ------------------------------------------------------------------------------ FSDP2, one GPU
def _four_bit_bytes(model) -> dict[str, torch.Tensor]:
    import bitsandbytes as bnb

    out = {}
    for name, m in model.named_modules():
        if isinstance(m, bnb.nn.Linear4bit):
            w = m.weight.full_tensor() if hasattr(m.weight, "full_tensor") else m.weight.data
            out[name] = w.detach().contiguous().view(torch.uint8).flatten().cpu().clone()
    return out


def _three_steps(model, batches):
    from distill_lab.backends.forward import token_loss_sum

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, foreach=False)
    losses = []
    for b in batches:
        with _autocast():
            s, n = token_loss_sum(model, to_device(b, DEVICE))
        (s / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(s.detach()) / n)
    return losses


def test_fsdp2_on_one_gpu_keeps_4bit_base_matches_one_device_and_saves_the_adapter(report, student_dir, tmp_path):
    """The mechanism the config refuses on GPUs until proven (bitsandbytes #1945), run directly: FSDP2
    over one rank cannot show cross-rank sharding faults, only what sharding does to the 4-bit storage."""
    import torch.distributed as dist
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from distill_lab.stages.train.export import save_adapter
    from distill_lab.stages.train.packing import pack_batch
    from distill_lab.students import load_student

    batches = [pack_batch(examples(*sizes((8, 200, 800), (4, 20, 60)), seed=10 + i), 0, sizes(4096, 128))
               for i in range(3)]
    cfg, ref_model, _ = _setup(student_dir)  # seeds the LoRA init as before
    ref_losses = _three_steps(ref_model, batches)
    del ref_model

    dist.init_process_group("nccl" if ON_GPU else "gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
                            rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model, tok = load_student(cfg.student, for_training=True, device="cuda:0" if ON_GPU else None)
        from distill_lab.backends.cuda.varlen import choose_backend, use_varlen_attention

        if ON_GPU:
            use_varlen_attention(model, choose_backend(DEVICE))
        model.train()
        before = _four_bit_bytes(model)
        mesh = init_device_mesh(DEVICE, (1,))
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for layer in model.get_base_model().model.layers:  # as SFTModule.configure_model
            fully_shard(layer, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        losses = _three_steps(model, batches)
        after = _four_bit_bytes(model)  # gathered from the shards, after three steps
        unchanged = sorted(before) == sorted(after) and all(torch.equal(before[k], after[k]) for k in before)
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        out = tmp_path / "adapter"
        save_adapter(model, tok, out, cfg.student.adapter, state_dict=full)
        saved = load_file(str(out / "adapter_model.safetensors"))
        lora_full = {k: v for k, v in full.items() if "lora_" in k}
    finally:
        dist.destroy_process_group()
    res = {"four_bit_tensors": len(before), "four_bit_bytes_unchanged_by_sharding_and_training": unchanged,
           "losses_one_device": ref_losses, "losses_fsdp2": losses,
           "max_loss_rel_diff": max(abs(a - b) / abs(a) for a, b in zip(ref_losses, losses, strict=True)),
           "adapter_tensors_saved": len(saved), "lora_tensors": len(lora_full)}
    report["fsdp2_one_gpu"] = res
    # the frozen 4-bit base: not cast by the mixed-precision policy nor stepped by the optimizer
    assert before and unchanged, res
    assert res["max_loss_rel_diff"] < 5e-3, res
    assert len(saved) == len(lora_full) > 0 and all("lora_" in k for k in saved), res
    trained = torch.cat([v.float().flatten() for _, v in sorted(lora_full.items())])
    stored = torch.cat([v.float().flatten() for _, v in sorted(saved.items())])
    assert torch.equal(trained.sort().values, stored.sort().values)  # the trained values, whatever the key names
