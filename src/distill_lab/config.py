"""The root config: every group's dataclass, composed, and registered with Hydra's ConfigStore.

Each group's dataclass lives beside the code that builds from it (``teachers/config.py``,
``students/config.py``, ``stages/<stage>/config.py``, ``tracking/config.py``); this module only
composes them. ``conf/config.yaml`` (shipped in the package) starts its defaults list with
``_config_schema``, the ``Config`` dataclass stored here, so every group option is merged into a typed node.

Validation happens in two layers:
1. OmegaConf checks keys and types while Hydra composes (a misspelt key or a string where an int is
   expected fails at composition time, naming ``full_key``).
2. ``validate(cfg)`` turns the composed config into these dataclasses (``OmegaConf.to_object``), which
   runs every ``__post_init__``: range checks that raise ``ConfigError`` naming the field.

Each stage receives the resulting ``Config`` object, never a raw dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from distill_lab.artifacts.manifest import config_dict
from distill_lab.errors import ConfigError
from distill_lab.errors import check as _check
from distill_lab.stages.evaluate.config import EvalConfig
from distill_lab.stages.generate.config import FamilySpec, GenerateConfig, RecipeConfig, SourceSpec
from distill_lab.stages.names import STAGES
from distill_lab.stages.report.config import ReportConfig
from distill_lab.stages.rl.config import RLConfig
from distill_lab.stages.train.config import (
    GGUF_DTYPES,
    DataConfig,
    ExportConfig,
    HardwareConfig,
    OptimizerConfig,
    TrainConfig,
)
from distill_lab.students.config import LoraConfig, QuantConfig, StudentConfig, TinyArchConfig
from distill_lab.teachers.config import PriceConfig, TeacherConfig
from distill_lab.tracking.config import LoggerConfig
from distill_lab.vocab import Effort

__all__ = ["GGUF_DTYPES", "STAGES", "Config", "ConfigError", "DataConfig", "Effort", "EvalConfig", "ExportConfig",
           "FamilySpec", "GenerateConfig", "HardwareConfig", "LoggerConfig", "LoraConfig", "OptimizerConfig",
           "PriceConfig", "QuantConfig", "RecipeConfig", "ReportConfig", "SourceSpec", "StudentConfig",
           "TeacherConfig", "TinyArchConfig", "TrainConfig", "register_configs", "to_container", "validate"]


@dataclass
class Config:
    stage: str = MISSING  # set by the CLI: generate | train | eval | report | pipeline | rl
    seed: int = 0
    print_config: bool = False
    run_dir: Optional[str] = None  # default: Hydra's output dir
    # the -m sweep's folder under multirun/<stage>/ (conf/config.yaml: the launch time by default);
    # name it to re-run the same sweep into the same folder (stages/resume.py)
    sweep_name: Optional[str] = None
    # skip a stage already completed in its run dir with the same config: null = only inside -m sweeps
    skip_completed: Optional[bool] = None
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    rl: RLConfig = field(default_factory=RLConfig)  # GRPO after SFT (stages/rl)

    def __post_init__(self) -> None:
        _check(self.stage == MISSING or self.stage in STAGES, "stage", f"unknown stage {self.stage!r}; expected one of {STAGES}")
        _check(self.sweep_name is None or (bool(self.sweep_name.strip()) and not self.sweep_name.startswith("/")
                                           and ".." not in self.sweep_name.split("/")),
               "sweep_name", f"{self.sweep_name!r}: a non-empty relative folder name without '..'")
        check_training_policy(self.student, self.hardware)
        from distill_lab.stages.generate.effort_mix_spec import check_teacher_mix

        check_teacher_mix(self.recipe.effort_mix, self.teacher)  # every effort of a mix fits the teacher
        _check(self.stage != "pipeline" or not self.report.modes(), (self.report.modes() or ["report"])[0],
               "the pipeline reports on its own eval runs; a sweep report, design check, vote or publish is "
               "`distill-lab report` on its own")
        # the pipeline evaluates after rl: rl rolling out (and rewarded on) the prompts eval scores is a leak
        _check(not (self.rl.enabled and self.rl.split in self.eval.splits), "rl.split",
               f"{self.rl.split!r} is one of eval.splits {list(self.eval.splits)}: with rl.enabled the pipeline "
               "would train by reward on the prompts it then evaluates; use rl.split=train")


def check_training_policy(student: StudentConfig, hw: HardwareConfig) -> None:
    """Cross-section rules of multi-GPU and mixed-precision training (before anything is loaded or paid).

    - FSDP2 + bitsandbytes 4-bit on GPUs is refused until a GPU test proves it: ``Params4bit`` has no
      FSDP2 all-gather extension, and bitsandbytes issue #1945 reports ``fully_shard`` silently
      corrupting packed NF4 weights stored as bf16 and ``full_tensor()`` crashing. A QLoRA student fits
      one GPU, so several GPUs train it with DDP (``hardware.strategy=auto`` picks DDP for several
      devices). On CPU (gloo) FSDP2 + 4-bit is allowed: a 2-process test compares it with one process.
    - Full fine-tuning keeps fp32 master weights: the weights are loaded in fp32 and bf16 is a compute
      dtype (``bf16-mixed`` autocast, or FSDP2's ``MixedPrecisionPolicy``); ``bf16-true`` without FSDP2
      would cast the weights themselves to bf16 and apply every update in bf16.
    """
    if student.adapter == "qlora" and hw.strategy == "fsdp2" and hw.accelerator != "cpu":
        raise ConfigError(
            "hardware.strategy: fsdp2 with student.adapter=qlora is not supported on GPUs: sharding "
            "bitsandbytes 4-bit weights with FSDP2 is unverified (bitsandbytes issue #1945: fully_shard can "
            "silently corrupt packed NF4 weights stored as bf16, and full_tensor() can crash). A QLoRA student "
            "fits one GPU: use hardware.strategy=ddp (or auto) to train it on several GPUs, or "
            "student.adapter=lora to shard a bf16 base with FSDP2")
    if student.adapter == "full" and hw.precision == "bf16-true" and hw.strategy != "fsdp2":
        raise ConfigError(
            "hardware.precision: bf16-true with student.adapter=full would train bf16 weights without fp32 "
            "master copies (updates smaller than bf16's resolution are lost); use bf16-mixed (fp32 weights, "
            "bf16 compute), or strategy=fsdp2, whose bf16-true keeps fp32 shards and computes in bf16")



def register_configs() -> None:
    """Store the root schema; ``conf/config.yaml`` names it first in its defaults list."""
    ConfigStore.instance().store(name="_config_schema", node=Config)


def validate(cfg: DictConfig | Config) -> Config:
    """Composed DictConfig -> typed ``Config``; raises ``ConfigError`` naming the bad field."""
    if isinstance(cfg, Config):
        return cfg
    from distill_lab.config_checks import check_known_keys

    check_known_keys(cfg)  # keys added with +key=value that no dataclass field takes
    try:
        obj = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except OmegaConfBaseException as e:  # type / key errors that survived composition
        raise ConfigError(str(e)) from e
    assert isinstance(obj, Config), f"expected Config, got {type(obj).__name__}"
    return obj


to_container = config_dict  # the name the stages used before the configs moved beside their code
