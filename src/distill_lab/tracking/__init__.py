"""Experiment tracking: the W&B / CSV loggers every stage opens, and the offline W&B run reader."""
