"""Training backends: the implementations of attention, LM head + loss, norms and MLP gates that a run chooses once (see select.py)."""
