"""A tensor-parallel stand-in for a large model: every rank joins a gloo group when it loads and each request is one
all-reduce over the ranks, so an answer is only right if every rank took part, with the same request.

Rank r contributes ``value * (r + 1)``: the sum is ``value * N * (N + 1) / 2`` for N ranks. ``stream`` sends that
many pieces, one all-reduce each, before the final answer; ``sleep`` holds every rank that long before reducing.

Each rank counts its ``handle`` calls in ``calls-{rank}.txt`` (in the model directory, its working directory) and
rank 0 answers every rank's count. Under ``parallelType: pp`` only rank 0 is sent batches: it answers the counts
without a collective. A customized describe is counted in ``describes-{rank}.txt`` and answers those counts.
"""

import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from ts.handler_utils.utils import send_intermediate_predict_response

ENV_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TS_IPEX_ENABLE")


class AllReduceHandler:
    def initialize(self, context):
        dist.init_process_group("gloo")
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        environment = {key: os.environ.get(key) for key in ENV_KEYS}
        self.environments = [None] * self.world_size
        dist.all_gather_object(self.environments, environment)
        self.parallel_type = context.model_yaml_config.get("parallelType")
        self.counts = {}
        self.initialized = True

    def _count_call(self, kind="calls"):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        Path(f"{kind}-{self.rank}.tmp").write_text(str(self.counts[kind]))
        os.replace(f"{kind}-{self.rank}.tmp", f"{kind}-{self.rank}.txt")  # rank 0 never reads half a file

    def _calls(self, kind="calls"):
        files = [Path(f"{kind}-{rank}.txt") for rank in range(self.world_size)]
        return [int(f.read_text()) if f.exists() else 0 for f in files]

    def _reduce(self, value):
        total = torch.tensor([value * (self.rank + 1)], dtype=torch.float64)
        dist.all_reduce(total)
        return total.item()

    def handle(self, data, context):
        if context.get_request_header(0, "describe") == "True":  # a customized describe: counted apart
            self._count_call("describes")
            return [{"describes": self._calls("describes")}]
        self._count_call()
        body = data[0].get("body") or {}
        if self.parallel_type == "pp":
            return [{"rank": self.rank, "calls": self._calls()}]
        value = float(body.get("value", 1))
        time.sleep(float(body.get("sleep", 0)))
        for step in range(int(body.get("stream", 0))):
            piece = {"step": step, "sum": self._reduce(value + step)}
            send_intermediate_predict_response([piece], context.request_ids, "part", 200, context)
        return [
            {
                "sum": self._reduce(value),  # every rank has counted this call once it returns
                "calls": self._calls(),
                "world_size": self.world_size,
                "rank": self.rank,
                "pid": os.getpid(),
                "environments": self.environments,
                "parallel_type": self.parallel_type,
            }
        ]
