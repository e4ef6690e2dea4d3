"""Logistic regression over a sparse feature vector, as Angel's LR predicts: ``pred`` is the margin w.x + b,
``proba`` its sigmoid, ``predLabel`` 1 or -1. The weights are fixed here, in code, so answers can be checked by hand.

Angel's request forms (dense vectors, kv maps, sparseIndices/sparseValues) all arrive as the same two inputs:
``indices`` (int32 feature indices) and ``values`` (float32 feature values).
"""

import math

import numpy as np

WEIGHTS = np.array([0.8, -0.5, 0.3, 0.0, 1.2, -1.0, 0.25, -0.75, 0.6, -0.2], dtype=np.float64)
BIAS = -0.1


def predict(indices, values):
    margin = BIAS + float(np.dot(WEIGHTS[indices], values))
    proba = 1.0 / (1.0 + math.exp(-margin))
    return round(margin, 6), round(proba, 6), 1 if proba >= 0.5 else -1
