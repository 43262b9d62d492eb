"""One dtype for q, k and v at an attention call.

Under bf16 autocast a student whose weights stay fp32 (``adapter=full``, or a student loaded in fp32)
hands attention q and k in fp32 (they leave the q/k norms and the rotary embedding in fp32) and v in
bf16 (``v_proj`` ran under autocast). SDPA casts them itself (it is one of autocast's lower-precision
ops); a kernel called directly (flash-attn, flex attention, the CPU row kernel) does not, and flash
and compiled flex refuse mixed dtypes. Every attention backend casts once, here, before its kernel.
"""

from __future__ import annotations

import torch


def common_dtype(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """q, k and v in the dtype SDPA would compute in: autocast's dtype when autocast is on for their
    device, else their promoted dtype. Tensors already in that dtype are returned as they are."""
    device = q.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
    else:
        dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    return tuple(x if x.dtype == dtype else x.to(dtype) for x in (q, k, v))
