"""The shipped Hydra configs (``pkg://distill_lab.conf``): ``config.yaml``, one primary config per stage
in ``stages/``, and a folder per config group. Found the same way from an editable or a regular install."""
