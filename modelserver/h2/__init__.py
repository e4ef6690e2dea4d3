"""This server's own HTTP/2 for gRPC (``grpc_transport=native``): a connection layer without I/O
(:mod:`.connection`, :mod:`.reader`, :mod:`.frames`, :mod:`.hpack_io`), gRPC's framing and words
(:mod:`.grpc_wire`), the calls (:mod:`.calls`), the asyncio protocol that runs them on the event loop
(:mod:`.protocol`) and the listener (:mod:`.listener`). It serves the same service objects as grpc.aio
(:class:`modelserver.grpc_server.ServiceTable`).
"""
