"""Keep freed memory in the process for the next chunk, where the C library allows.

Work done in chunks that allocates the same tensors again for each chunk, blocks of a
few to a few tens of MiB, pays for fresh pages every time: GNU libc's ``malloc``
serves blocks that large straight from the kernel and hands them back on ``free``
(and trims its heap once enough at its top is free), so each chunk's blocks must be
mapped and zeroed by the kernel one 4 KiB page at a time. ``keep_freed_memory`` tells
``malloc`` to serve blocks of up to 32 MiB from its heap and to keep up to
``trim_mib`` of free memory there: the next chunk reuses the last one's pages. Peak
memory does not grow (the same tensors are alive at once); memory freed stays with the
process, up to ``trim_mib`` per thread's heap, instead of going back to the kernel at
once.

Neither a loss surface on the batched route nor a gain map needs it: the surface's
chunks write into buffers of their own (``phviz.landscape.graph.Workspace``), and a
map's members step in NumPy buffers kept for the run. What still allocates anew chunk
after chunk is a surface of a module that route does not take (``vmap``); a script
that draws many of those may call this. ``python -m phviz.bench landscape`` shows both
settings side by side.

This is a setting of the whole process, so phviz never makes it by itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt(3) parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest M_MMAP_THRESHOLD glibc accepts on 64-bit systems.
_MMAP_MAX = 32 * 2**20

_kept: int | None = None  # the trim threshold set, once set


def keep_freed_memory(trim_mib: int = 128) -> bool:
    """Have ``malloc`` reuse freed blocks of up to 32 MiB and keep up to ``trim_mib``
    MiB free in its heaps; returns whether the setting is in effect (False where the
    C library is not GNU libc). Calling it again changes nothing."""
    global _kept
    if isinstance(trim_mib, bool) or not isinstance(trim_mib, int) or trim_mib < 1:
        raise ValueError(f"Invalid trim_mib: {trim_mib!r} (must be a whole number >= 1)")
    if _kept is not None:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Each returns 1 on success. A refused mmap threshold (a 32-bit system) changes
    # nothing; the trim threshold alone would make things worse (it fixes the mmap
    # threshold where it stands, 128 KiB at first), so it comes second.
    if mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) != 1:
        return False
    trim = min(trim_mib * 2**20, 2**31 - 1)
    if mallopt(_M_TRIM_THRESHOLD, trim) != 1:
        return False
    _kept = trim
    return True


def freed_memory_kept() -> bool:
    """Whether ``keep_freed_memory`` is in effect in this process."""
    return _kept is not None
