"""``python -m distill_lab.stages.pipeline [hydra overrides]``: the pipeline stage's entry point (``distill-lab pipeline`` runs it)."""

from distill_lab.app import stage_main

if __name__ == "__main__":
    import logging

    logging.getLogger("distill_lab").setLevel(logging.INFO)
    stage_main("pipeline")()
