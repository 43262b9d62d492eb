"""Whether the trainer's forward is running "maskless": the attention functions that take segments
(``distill_segments`` on CPU, ``distill_varlen_*`` on CUDA) then register a mask function that builds
no attention mask, since the segments (or ``cu_seqlens``) make it redundant; for a packed sequence of
N tokens that mask is N x N booleans.

The one switch both attention modules read, in its own module below them, so that neither imports the
other for it. Thread-local: a forward in another thread (a data-loader worker, an eval) is unaffected.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager


class _Maskless(threading.local):
    active = False


MASKLESS = _Maskless()


@contextmanager
def maskless():
    """Inside: segment-attention models build no attention mask (the caller passes ``segments`` or
    ``cu_seq_lens_q``, which make it redundant)."""
    MASKLESS.active, before = True, MASKLESS.active
    try:
        yield
    finally:
        MASKLESS.active = before
