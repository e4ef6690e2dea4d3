"""Keep freed heap memory for the next request instead of handing it back to the kernel after each one.

glibc trims the top of the heap once more than ``M_TRIM_THRESHOLD`` of it is free, and its dynamic default
(about twice the largest block it recently mapped, so some 256 KiB with 100 KiB bodies) is crossed by every request
that carries a large body. The next request then grows the heap again, and the kernel zeroes every page on first
touch: with 100 KiB bodies at c=16 that was about 7% of the frontend's CPU (page faults and ``brk``, measured with
``perf``). Fixed thresholds stop the churn: up to ``TRIM_THRESHOLD`` of free heap stays mapped, and blocks below
``MMAP_THRESHOLD`` come from the heap. The cost is that the process keeps up to ``TRIM_THRESHOLD`` more memory after a
burst of large bodies; at idle nothing changes.

The thresholds cover 1 MiB tensors with room (a gRPC call of one holds the message, the model's answer and the joined
answer: three blocks of just over 1 MiB each). With 1 MiB blocks mapped and unmapped per call (the earlier 1 MiB
``MMAP_THRESHOLD``, which also turns glibc's adaptive threshold off), gRPC ``ModelInfer`` of a 1 MiB tensor at c=16
took about 1,070 page faults and 4.5 ms of CPU per call (3.1 ms of it in the kernel); with these, 6-14 faults and
1.5-2.2 ms, for about 25 MB more resident after the load (three interleaved rounds, a KServe script).
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger("modelserver")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 32 * 1024 * 1024
MMAP_THRESHOLD = 16 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds for this process; False where there is no glibc (nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not done:
        logger.debug("mallopt refused the heap thresholds; the allocator's defaults stay")
    return done
