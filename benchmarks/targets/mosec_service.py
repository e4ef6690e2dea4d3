"""Mosec services equivalent to the benchmark's TorchServe handlers, one stage with one worker process:

- ``echo-json``: the request's JSON back (Mosec's default JSON (de)serialisation, which also re-serialises it with
  ``indent=2``, like our echo model);
- ``echo-bytes``: the request body back byte for byte (raw-bytes (de)serialisation);
- ``cost``: sleeps ``COST_S`` once per batch and answers each request with the size of its batch, like
  ``benchmarks/handlers/cost_handler.py``.

Run with the venv that has mosec (not our main venv), from a copy outside this directory, whose ``mosec.py`` (the
benchmark peer) would shadow the mosec package: ``python mosec_service.py --service echo-json --max-batch-size 1
--max-wait-ms 5 --port 8000 --address 127.0.0.1``. Mosec parses its own options (``--port``, ``--address``, ...) from
the same command line with ``parse_known_args``; ours do not clash with them. Workers are started with the
``spawn`` method, which re-imports this file as ``__mp_main__``: the classes live at module level and the server
starts only under ``__main__``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from mosec import Server, Worker

COST_S = 0.010


class EchoJson(Worker):
    """Returns what it was given: one item, or the whole batch in order."""

    def forward(self, data: Any) -> Any:
        return data


class EchoBytes(Worker):
    """Echo with the raw body in and out instead of JSON."""

    req_mime_type = "application/octet-stream"
    resp_mime_type = "application/octet-stream"

    def deserialize(self, data: bytes) -> bytes:
        return data

    def serialize(self, data: bytes) -> bytes:
        return data

    def forward(self, data: Any) -> Any:
        return data


class Cost(Worker):
    """A fixed cost per call: one ``COST_S`` sleep per batch, each request answered with the batch size."""

    def forward(self, data: Any) -> Any:
        time.sleep(COST_S)
        if self.max_batch_size > 1:  # mosec passes a list only when batching is enabled
            return [len(data)] * len(data)
        return 1


SERVICES: dict[str, type[Worker]] = {"echo-json": EchoJson, "echo-bytes": EchoBytes, "cost": Cost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--service", choices=sorted(SERVICES), required=True)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--max-wait-ms", type=int, default=5)
    args, _ = parser.parse_known_args()  # the rest is mosec's
    server = Server()
    server.append_worker(
        SERVICES[args.service], num=1, max_batch_size=args.max_batch_size, max_wait_time=args.max_wait_ms
    )
    server.run()


if __name__ == "__main__":
    main()
