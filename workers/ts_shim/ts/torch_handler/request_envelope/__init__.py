"""``ts.torch_handler.request_envelope``: TorchServe's request envelopes, selected by ``service_envelope``.

An envelope wraps a handler's ``handle``: it turns the request rows of a batch into what the handler expects
before the call, and the handler's results into the response format after it. The loader takes the one class a
module ``ts.torch_handler.request_envelope.<name>`` defines (``body``, ``json``, ``kserve``, ``kservev2``) and
serves ``EnvelopeClass(handle).handle``. As in TorchServe, ``kserve`` and ``kservev2`` answer one item for the whole
batch, so they work with a batch size of 1 (a larger batch gets 503 "number of batch response mismatched").
"""
