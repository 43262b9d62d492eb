"""Evaluation internals: prompt loading, generation, answer extraction, aggregation into metrics.

The stage entry point is ``distill_lab.evaluate.run``; ``metrics.json``'s schema is documented there.
"""
