"""Training backends for CUDA devices (chosen once per run, see ``varlen.py``)."""
