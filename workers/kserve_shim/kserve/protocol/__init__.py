"""``kserve.protocol``: the protocol modules (``kserve.protocol.infer_type``)."""
