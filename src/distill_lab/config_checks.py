"""Config checks beyond one field's range: the model table, keys Hydra let through, the launcher.

Called from ``config.py`` (``TeacherConfig.__post_init__``, ``validate``) and the CLI; each raises
``ConfigError`` naming the key.
"""

from __future__ import annotations


def check_anthropic_teacher(cfg) -> None:
    """Config-time: an unknown model needs its beta headers said (the model table's other checks run at
    the start-up check, where the Models API's report takes precedence)."""
    from distill_lab.teachers.anthropic_models import check_betas

    check_betas(cfg)


# ------------------------------------------------------------------ keys Hydra lets through
def check_known_keys(node, path: str = "") -> None:
    """Every key of a structured node is a field of its dataclass.

    Hydra's ``+key=value`` (the form its own error message suggests for a misspelt key) adds a key to a
    structured node, and ``OmegaConf.to_object`` then drops it without a word: ``+recipe.sise=10`` would
    run with the default size. Dict-typed fields (``effort_budgets``, a family's ``params``) take any key.
    """
    import dataclasses
    import difflib

    from omegaconf import DictConfig, ListConfig, OmegaConf

    from distill_lab.config import ConfigError

    if isinstance(node, ListConfig):
        for i in range(len(node)):
            child = node._get_node(i)
            if isinstance(child, (DictConfig, ListConfig)):
                check_known_keys(child, f"{path}[{i}]")
        return
    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
        return
    schema = OmegaConf.get_type(node)
    fields = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in node.keys():
        full = f"{path}.{key}" if path else str(key)
        if fields is not None and key not in fields and not (path == "" and key == "hydra"):
            near = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f"; did you mean {full.rsplit('.', 1)[0] + '.' if '.' in full else ''}{near[0]}?" if near else ""
            raise ConfigError(f"{full}: unknown key (not a field of {schema.__name__}){hint}")
        child = node._get_node(key)
        if fields is not None and isinstance(child, (DictConfig, ListConfig)):
            check_known_keys(child, full)


# ------------------------------------------------------------------ the launcher (hydra.launcher.*)
_POSITIVE = ("timeout_min", "nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node", "mem_gb",
             "array_parallelism", "n_jobs")
_NON_NEGATIVE = ("signal_delay_s", "max_num_timeout")


def check_launcher(hydra_node) -> None:
    """Range checks of ``hydra.launcher`` (Slurm, joblib...): Hydra passes these on unchecked, and a
    ``timeout_min=-5`` would only fail at the scheduler, or not at all."""
    from omegaconf import OmegaConf

    from distill_lab.config import ConfigError

    if hydra_node is None or "launcher" not in hydra_node:
        return
    launcher = OmegaConf.to_container(hydra_node.launcher, resolve=True)
    if not isinstance(launcher, dict):
        return
    for name, value in launcher.items():
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name in _POSITIVE and value <= 0:
            raise ConfigError(f"hydra.launcher.{name}: must be > 0, got {value}")
        if name in _NON_NEGATIVE and value < 0:
            raise ConfigError(f"hydra.launcher.{name}: must be >= 0, got {value}")
    t, d = launcher.get("timeout_min"), launcher.get("signal_delay_s")
    if isinstance(t, (int, float)) and isinstance(d, (int, float)) and d >= 60 * t:
        raise ConfigError(f"hydra.launcher.signal_delay_s: {d} s is not below the time limit "
                          f"(timeout_min={t}, i.e. {60 * t} s)")


def precheck_cli(stage: str, flags: list[str], overrides: list[str]) -> None:
    """Compose and validate the config before Hydra takes over: Hydra creates the run dir before the stage
    starts, and ``--cfg``/``-c`` (prints the config) and ``-m`` (launches jobs, maybe on Slurm) do not call
    the stage first at all. Under ``-m`` the first value of each swept key stands for the sweep (the
    launcher settings are shared). Raises ``ConfigError``; a composition error is left to Hydra's own
    report."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from distill_lab.cli import conf_dir
    from distill_lab.config import register_configs, validate

    single: list[str] = []
    for text, ov in zip(overrides, OverridesParser.create().parse_overrides(overrides), strict=True):
        if not ov.is_sweep_override():
            single.append(text)
            continue
        try:
            first = next(iter(ov.sweep_string_iterator()))
        except Exception:  # an interval or other non-discrete sweep: the sweeper draws it; leave the default
            continue
        single.append(f"{ov.get_key_element()}={first}")
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            dcfg = compose("config", overrides=[*single, f"stage={stage}"], return_hydra_config=True)
    except Exception:
        GlobalHydra.instance().clear()
        return  # Hydra reports composition errors itself (and exits 1, which the CLI maps to 2)
    GlobalHydra.instance().clear()
    check_launcher(dcfg.get("hydra"))
    from omegaconf import OmegaConf, open_dict

    with open_dict(dcfg):
        del dcfg["hydra"]
    OmegaConf.set_struct(dcfg, True)
    validate(dcfg)


# ------------------------------------------------------------------ teacher x recipe
def check_oracle_can_answer(cfg, problems) -> None:
    """The oracle teacher answers a prompt only through its family's solver: a free-form prompt needs a
    reference, and a source prompt labelled with a built-in family was not generated by it. Refused here,
    before any row is written, instead of failing mid-run."""
    from distill_lab.config import ConfigError

    if cfg.teacher.provider != "oracle":
        return
    bad = [p for p in problems if (p.task == "freeform" and p.reference is None)
           or ("source" in p.meta and p.task != "freeform")]
    if bad:
        p = bad[0]
        why = "has no reference" if p.task == "freeform" else f"is labelled task {p.task!r} but was not generated by it"
        raise ConfigError(f"teacher.provider: the oracle teacher cannot answer {len(bad)} prompt(s) of recipe.sources "
                          f"(e.g. {p.meta.get('source')}: {p.prompt[:60]!r} {why}); use teacher=anthropic or "
                          "teacher=openai_compat, or give those prompts a reference and no task")
