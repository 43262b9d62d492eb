"""``python -m distill_lab.stages.report [hydra overrides]``: the report stage's entry point (``distill-lab report`` runs it)."""

from distill_lab.app import stage_main

if __name__ == "__main__":
    import logging

    logging.getLogger("distill_lab").setLevel(logging.INFO)
    stage_main("report")()
