"""The protocol names the server knows, in one place.

A *model protocol* decides what the routes several APIs share (``POST /v1/models/{m}:predict``,
``GET /v1/models/{m}``) mean for one model: its decoder, its error shape and status policy, its
status body. An *API family* is a set of routes a listener can serve. A model's protocol comes from
its configuration (``protocol`` in model-config.yaml or ``models=``, default ``default_protocol``),
never from the request.
"""

from __future__ import annotations

TORCHSERVE = "torchserve"
KSERVE = "kserve"
ANGEL = "angel"
MINDSPORE = "mindspore"

MODEL_PROTOCOLS = (TORCHSERVE, KSERVE, ANGEL)
"""What a model's ``protocol`` may be."""

API_FAMILIES = (TORCHSERVE, KSERVE, MINDSPORE, ANGEL)
"""The route families a listener can serve (``inference_protocols``). MindSpore's routes (``/model/**``) share no
path with the others, so it is an API family but not a model protocol: any model answers them."""
