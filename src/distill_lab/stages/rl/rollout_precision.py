"""The precision of the rl stage's HF ``generate`` rollouts (``rl.rollout_precision``), chosen once per run.

At 8-16 rows a decoding step the GEMMs are bound by reading the weights (benchmarks/README.md, "RL
rollouts vs llama.cpp"), so on a CPU that multiplies bf16 natively (AVX512-BF16 / AMX) a bf16 copy of the
weights halves the bytes read a step. ``bf16`` therefore keeps a second, bf16 copy of the student for
generation only: a plain HF model holding the LoRA merged into the base (peft's ``merge_and_unload`` on a
deep copy), refreshed from the policy before the first rollout after each optimiser step, as TRL refreshes
vLLM's weights. The policy itself, its log-probs and the loss stay in the precision they had: only the
sampling of completions runs in bf16 (HF ``generate`` still samples from fp32 logits cast from bf16).
The completions are then drawn from a policy a little off the one the loss scores; with
``rl.iterations=1`` TRL's ratio is 1 and nothing corrects that (its importance-sampling correction exists
for vLLM only), the usual trade of bf16 rollouts (vLLM's default).

The choice, recorded in the run's summary as ``rollout_precision`` with ``rollout_precision_why``:
- ``bf16``: ``auto`` on a GPU or a CPU with native bf16 (``backends.precision.native_bf16``), or asked;
- ``fp32``: ``auto`` on a CPU without native bf16 (emulated bf16 is many times slower) or in a run with
  ``hardware.precision=32-true`` (``hardware=cpu_fp32``: fp32 asked for everywhere), or asked; the
  rollouts then run on the policy's own weights (merged around ``generate`` by ``rollout_weights.py``);
- ``vllm``: ``rl.vllm`` set: vLLM picks its own dtype.
An explicit ``bf16`` where it cannot run (no native bf16 on this CPU, the adapter unmerged, vLLM) is a
config error, never a silent fall back.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from distill_lab.backends import precision as prec
from distill_lab.errors import ConfigError

if TYPE_CHECKING:
    from distill_lab.config import Config

SETTINGS = ("auto", "fp32", "bf16")


def choose(setting: str, weights: str, device: str, flags: frozenset[str] | set[str] | None,
           isa_cap: str | None = None, hw_precision: str = "auto") -> tuple[str, str]:
    """``(precision, why)`` of this run's rollouts: a pure function of the setting, the rollout weights
    (``rollout_weights.choose``), the device, the CPU's flags and ``hardware.precision`` (``auto`` keeps
    the fp32 of a run that asked for ``32-true``), so it is testable for other CPUs."""
    if setting not in SETTINGS:
        raise ConfigError(f"rl.rollout_precision: {setting!r} is not one of {SETTINGS}")
    if weights == "vllm-sync":
        if setting != "auto":
            raise ConfigError(f"rl.rollout_precision={setting}: with rl.vllm set, vLLM picks its own dtype; "
                              "leave rl.rollout_precision=auto")
        return "vllm", "rl.vllm: vLLM's own dtype"
    if weights == "adapter":
        if setting == "bf16":
            raise ConfigError("rl.rollout_precision=bf16: needs the LoRA merged into a bf16 copy of the weights; "
                              "set rl.merge_for_rollouts=true (or rl.rollout_precision=fp32)")
        return "fp32", "rl.merge_for_rollouts=false: rollouts on the policy's own (unmerged) weights"
    if setting == "fp32":
        return "fp32", "asked (rl.rollout_precision=fp32)"
    if setting == "auto" and hw_precision == "32-true":
        return "fp32", "auto: hardware.precision=32-true"
    if device != "cpu":
        return "bf16", f"{setting} on {device}"
    native = prec.native_bf16(flags, isa_cap)
    if native is False:
        why = (f"oneDNN is capped at ONEDNN_MAX_CPU_ISA={isa_cap}" if isa_cap else "no avx512_bf16/amx_bf16 flag")
        if setting == "bf16":
            raise ConfigError(f"rl.rollout_precision=bf16: this CPU has no native bf16 ({why}); bf16 would be "
                              "emulated, many times slower: use auto or fp32")
        return "fp32", f"auto: this CPU has no native bf16 ({why})"
    if setting == "bf16":
        return "bf16", "asked (rl.rollout_precision=bf16)"
    if native is None:
        return "fp32", "auto: this CPU's flags are unknown"
    return "bf16", "auto: this CPU multiplies bf16 natively (avx512_bf16/amx_bf16)"


def decide(cfg: Config, weights: str, device: str) -> tuple[str, str]:
    """``choose`` for this machine."""
    return choose(cfg.rl.rollout_precision, weights, device, prec.cpu_flags(), prec.onednn_isa_cap(),
                  cfg.hardware.precision)


def _plain_name(name: str) -> str | None:
    """A peft-injected parameter's name in the plain (merged) model; None for adapter-only parameters."""
    if "lora_" in name or ".original_module." in name:
        return None
    return name.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")


def _contiguous_input(module: Any, args: tuple) -> tuple:
    """The LM head's input made contiguous. The prefill hands the head the last position of every prompt,
    ``hidden[:, -1:, :]``, a strided view; ``F.linear`` then runs as a batched matmul over the weight
    expanded per sequence (a copy of B x 49k x 576 on SmolLM2). In bf16 on this CPU that one call took
    5.2 s against 11 ms on the same rows made contiguous (1 thread, B=8; fp32: 233 ms against 119 ms),
    seconds of a ~10 s rollout batch (benchmarks/README.md, "RL rollouts vs llama.cpp")."""
    return (args[0].contiguous(), *args[1:])


class RolloutCopy:
    """A bf16 copy of ``policy`` (a peft model or a plain HF model) for generation only."""

    def __init__(self, policy: Any, dtype: Any) -> None:
        from distill_lab.stages.rl.rollout_weights import is_peft

        self.policy, self.peft = policy, is_peft(policy)
        plain = copy.deepcopy(policy)
        # A forward patched onto an instance survives deepcopy with its closure still calling the original:
        # TRL's fused log-prob forward (trl/trainer/utils.py) would make the copy generate on the fp32
        # policy. Generation needs none of them, so every module of the copy runs its class's own forward.
        for m in plain.modules():
            m.__dict__.pop("forward", None)
        if self.peft:
            plain = plain.merge_and_unload()  # every adapter unloaded, the active one merged
        self.model = plain.to(dtype).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        head = self.model.get_output_embeddings()
        if head is not None:
            head.register_forward_pre_hook(_contiguous_input)
        mine = dict(self.model.named_parameters())
        src = self.policy.get_base_model() if self.peft else self.policy
        self.pairs: list[tuple[Any, Any]] = []  # (rollout tensor, policy tensor) of what training can change
        changing = {id(layer.get_base_layer().weight) for layer in self._tuner_layers()}
        for name, p in src.named_parameters():
            plain_name = _plain_name(name)
            if plain_name is None:
                continue
            if plain_name not in mine:
                raise RuntimeError(f"rl rollout copy: no parameter {plain_name!r} for the policy's {name!r}")
            if p.requires_grad or id(p) in changing:
                self.pairs.append((mine[plain_name], p))
        self.synced_step: int | None = None

    def _tuner_layers(self) -> list[Any]:
        from distill_lab.stages.rl.rollout_weights import _tuner_layers

        return _tuner_layers(self.policy) if self.peft else []

    def sync(self) -> None:
        """Copy the policy's current weights (the LoRA merged in) into the bf16 copy."""
        import contextlib

        import torch

        from distill_lab.stages.rl.rollout_weights import merged_adapter

        with merged_adapter(self.policy) if self.peft else contextlib.nullcontext(), torch.no_grad():
            for mine, theirs in self.pairs:
                mine.copy_(theirs)


def apply(trainer: Any) -> RolloutCopy:
    """Generate ``trainer``'s (TRL's ``GRPOTrainer``) rollouts from a bf16 ``RolloutCopy`` of its policy:
    TRL 1.16's HF path generates with ``self.model_wrapped`` in ``_generate_single_turn``, so that
    attribute points at the copy for the call (single process: no DDP/FSDP wrapper to keep), and the copy
    is refreshed first whenever an optimiser step moved the policy since the last refresh."""
    import torch

    rollout = RolloutCopy(trainer.model, torch.bfloat16)
    inner = trainer._generate_single_turn

    def generate_bf16(*a: Any, **k: Any):
        if rollout.synced_step != trainer.state.global_step:
            rollout.sync()
            rollout.synced_step = trainer.state.global_step
        wrapped = trainer.model_wrapped
        trainer.model_wrapped = rollout.model
        try:
            return inner(*a, **k)
        finally:
            trainer.model_wrapped = wrapped

    trainer._generate_single_turn = generate_bf16
    trainer.rollout_copy = rollout
    return rollout
