"""distill_lab: distil a teacher into a small student by SFT, and measure what the student kept."""

__version__ = "0.1.0"
