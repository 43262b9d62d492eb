"""Entry point of the extra ranks Lightning starts for multi-process training (DDP, FSDP2).

Lightning's subprocess launcher re-runs ``sys.argv`` in each new rank. The ``distill-lab`` CLI rewrites
``sys.argv`` for Hydra (``distill-lab-train <overrides> stage=train ...``), which is not a file that
Python can run; the train stage therefore points ``sys.argv[0]`` at this module before fitting, so
each rank re-enters the same Hydra app with the same overrides (plus Lightning's ``hydra.run.dir``).
"""

from __future__ import annotations

import logging

if __name__ == "__main__":
    from distill_lab.cli import _app

    logging.getLogger("distill_lab").setLevel(logging.INFO)
    _app("train")()
