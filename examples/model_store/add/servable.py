"""MindSpore Serving's test servables as plain functions: one function per method of model-config.yaml.

Each call is one request instance: numbers and bools arrive as numpy arrays (0-d for a scalar), ``str`` inputs as
``str`` and bytes inputs as ``bytes``; a returned value becomes the output of the declared name.
"""

import numpy as np


def add_common(x1, x2):
    """The add model: x1 + x2, in the inputs' type."""
    return x1 + x2


def add_cast(x1, x2):
    """The add model on inputs of any numeric type: computed in float32."""
    return x1.astype(np.float32) + x2.astype(np.float32)


def mix_all_type(float_val, int_val, bool_val, str_val, bytes_val):
    """Every type at once: numbers plus one, bools negated, text and bytes with a suffix."""
    return float_val + 1, int_val + 1, np.logical_not(bool_val), str_val + "123", bytes_val + b"456"


def str_concat(text1, text2):
    return text1 + text2


def bytes_concat(text1, text2):
    return text1 + text2


def str_empty(text1, text2):
    """The second text when the first is empty, else an empty text."""
    return "" if text1 else text2


def bytes_empty(text1, text2):
    """The second bytes when the first is empty, else empty bytes."""
    return b"" if text1 else text2


def int_plus_1(int_val):
    return int_val + 1


def float_plus_1(float_val):
    return float_val + 1


def bool_not(bool_val):
    return np.logical_not(bool_val)


def echo(data):
    """The input as it came: for benchmarks beside TorchServe's echo."""
    return data
