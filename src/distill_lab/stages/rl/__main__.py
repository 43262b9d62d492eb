"""``python -m distill_lab.stages.rl [hydra overrides]``: the rl stage's entry point (``distill-lab rl`` runs it)."""

from distill_lab.app import stage_main

if __name__ == "__main__":
    import logging

    logging.getLogger("distill_lab").setLevel(logging.INFO)
    stage_main("rl")()
