"""Methods for MindSpore's per-instance errors: ``slow`` takes 0.2 s per instance, ``fail`` raises for a negative x."""

import time


def slow(x):
    time.sleep(0.2)
    return x


def fail(x):
    if (x < 0).any():
        raise ValueError("x must not be negative")
    return x * 2
