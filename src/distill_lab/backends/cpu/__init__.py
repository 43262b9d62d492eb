"""The ``cpu_fast`` backend: row-segment attention, fused LoRA / RMSNorm / SwiGLU ops and the C++ kernels."""
