"""Public benchmark suites (``eval/suite=gsm8k|math500|aime24|aime25|gpqa_diamond|ifeval``): loaders by
hub id and schema, the field's prompt formats, and the graders in ``distill_lab.stages.evaluate.graders``."""
