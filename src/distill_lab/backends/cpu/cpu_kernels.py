"""Builds and loads the project's C++ CPU kernels (``backends/cpu/kernels/*.cpp``) as plain shared libraries.

The sources use no torch headers, so one ``c++`` call builds a kernel in a few seconds, once per
machine type. The library is cached under ``$DISTILL_LAB_CACHE/kernels`` (default
``~/.cache/distill_lab``), named by a hash of the sources, the machine type, the compiler and the
flags, and written atomically, so concurrent ranks and sweep jobs share one build. Python calls it
through ``ctypes`` (which releases the GIL). Where torch runs GNU OpenMP the kernels are built with
``-fopenmp`` and share torch's thread pool; elsewhere they start their own threads.

Instruction set: ``-mavx2 -mfma`` when PyTorch reports AVX2 or AVX-512 on this CPU (the flags are part
of the cache key, so a cache shared by different nodes keeps one build per kind); otherwise the
compiler's baseline for the architecture.

When no compiler is found, the build fails, or ``DISTILL_LAB_CPU_KERNELS=0`` is set, ``load`` returns
None and callers use PyTorch's own kernels (the reason is logged once).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_LOADED: dict[str, ctypes.CDLL | None] = {}


def cache_root() -> Path:
    return Path(os.environ.get("DISTILL_LAB_CACHE") or Path.home() / ".cache" / "distill_lab") / "kernels"


def compile_flags() -> list[str]:
    import torch

    flags = ["-O3", "-std=gnu++17", "-shared", "-fPIC", "-pthread"]
    if platform.machine().lower() in ("x86_64", "amd64") and torch.backends.cpu.get_cpu_capability() in (
            "AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    if _torch_uses_libgomp():
        flags.append("-fopenmp")
    return flags


def _torch_uses_libgomp() -> bool:
    """True when this process runs GNU OpenMP (Linux wheels of torch ship ``libgomp.so.1``). A kernel built
    with ``-fopenmp`` then joins torch's own thread pool, as the loader reuses the loaded ``libgomp.so.1``;
    with any other runtime it would bring a second pool whose threads fight torch's for the cores."""
    import torch  # noqa: F401  (loads torch's OpenMP runtime)

    try:
        return "/libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def _build(name: str, signatures: dict[str, list]) -> ctypes.CDLL:
    folder = resources.files("distill_lab.backends.cpu") / "kernels"
    # the kernel and the shared headers (vec.h), by name
    files = {f.name: f.read_bytes() for f in folder.iterdir() if f.name == f"{name}.cpp" or f.name.endswith(".h")}
    cxx = shutil.which(os.environ.get("CXX", "c++"))
    if cxx is None:
        raise RuntimeError(f"no C++ compiler ({os.environ.get('CXX', 'c++')!r} is not on PATH)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    flags = compile_flags()
    parts = [b for k in sorted(files) for b in (k.encode(), files[k])]
    parts += [platform.machine().encode(), " ".join(flags).encode(), *(v.encode() for v in version)]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()
    lib = cache_root() / f"{name}-{key[:16]}.so"
    if not lib.is_file():
        lib.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
            for fname, data in files.items():
                (Path(tmp) / fname).write_bytes(data)
            src, out = Path(tmp) / f"{name}.cpp", Path(tmp) / lib.name
            proc = subprocess.run([cxx, *flags, str(src), "-o", str(out)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{cxx} failed on {name}.cpp:\n{proc.stderr[-2000:]}")
            os.replace(out, lib)  # atomic: a racing process keeps either complete copy
    loaded = ctypes.CDLL(str(lib))
    for function, argtypes in signatures.items():
        getattr(loaded, function).argtypes = argtypes
    return loaded


def load(name: str, signatures: dict[str, list]) -> ctypes.CDLL | None:
    """The kernel library ``name`` (built on first use) with the ctypes argument types of its functions
    set from ``signatures``, or None when it cannot be used here."""
    if os.environ.get("DISTILL_LAB_CPU_KERNELS", "1") == "0":
        return None
    with _LOCK:
        if name not in _LOADED:
            try:
                _LOADED[name] = _build(name, signatures)
            except (OSError, RuntimeError) as e:
                log.warning("CPU kernel %s unavailable, using PyTorch's kernels instead: %s", name, e)
                _LOADED[name] = None
        return _LOADED[name]
