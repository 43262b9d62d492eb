"""Config checks beyond one field's range: keys Hydra lets through, and the launcher's settings.

Called from ``config.validate`` and the stage entry point (``app.py``); each raises ``ConfigError`` naming
the key.
"""

from __future__ import annotations


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

    from distill_lab.errors import ConfigError

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

    from distill_lab.errors import ConfigError

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
