"""``dataset.json`` beside a dataset's rows: what the dataset is, so that no one has to infer it.

Written by the generate stage into the dataset folder; read by the reports (effort, size and cost of each
run of a sweep) and by anyone handed a dataset folder. A folder made elsewhere (an import of a teacher
dataset, an older version) may have none: ``DatasetInfo.load`` then returns None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.artifacts.jsonio import read_json, write_json

SCHEMA_VERSION = 1
FILE = "dataset.json"


class DatasetInfoError(ValueError):
    """A ``dataset.json`` that cannot be read; the message names the file."""


@dataclass
class DatasetInfo:
    recipe: str  # recipe name
    size: int  # train prompts asked for (recipe.size)
    test_size: int
    ood_size: int
    recipe_seed: int
    teacher_provider: str
    teacher_model: str
    effort: str | None  # teacher.effort (None for imported rows of unknown effort)
    samples_per_prompt: int = 1
    rows: dict[str, int] = field(default_factory=dict)  # rows per split, rejected included
    cost_usd: float = 0.0  # teacher spend behind every row of the folder
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any, where: str = FILE) -> DatasetInfo:
        if not isinstance(d, dict) or d.get("schema_version") != SCHEMA_VERSION:
            raise DatasetInfoError(f"{where}: not a distill_lab dataset record of schema_version {SCHEMA_VERSION}")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        missing = [k for k in ("recipe", "size", "test_size", "ood_size", "recipe_seed", "teacher_provider",
                               "teacher_model", "effort") if k not in known]
        if missing:
            raise DatasetInfoError(f"{where}: missing {', '.join(missing)}")
        return cls(**known)

    def write(self, dataset_dir: str | Path) -> Path:
        return write_json(Path(dataset_dir) / FILE, self.to_json())

    @classmethod
    def load(cls, dataset_dir: str | Path | None) -> DatasetInfo | None:
        if not dataset_dir:
            return None
        path = Path(dataset_dir) / FILE
        if not path.is_file():
            return None
        return cls.from_json(read_json(path, DatasetInfoError), where=str(path))
