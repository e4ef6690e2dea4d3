"""A worker that is a group of ranks (large model inference, TorchServe's ``torchrun`` workers).

Each rank is a ``python -m workers --rank R`` child of ours with the environment ``torchrun`` would give it
(:func:`~modelserver.parallel.rank_environment`) and its own socketpair, as under TorchServe every rank has its own
connection. The worker connection and its feed see the group as one channel (:class:`GroupChannel`):

- ``load`` and ``shutdown`` go to every rank; each batch too, but to rank 0 alone under ``parallelType: pp`` and
  for a describe job. So every rank's handler sees the calls it sees under TorchServe, and runs its collectives in
  lockstep.
- Results and streamed chunks come from rank 0 alone; the other ranks run the handler and send nothing back
  (``send_intermediate_predict_response`` does nothing on them, as in TorchServe).
- ``hello`` and ``loaded`` are awaited from every rank: the group is ready when all ranks have loaded.
- Cancels are not sent: a rank that stopped on a cancel would leave the others blocked in a collective.
- One rank's socket closing (its death) closes the group: the running batch is answered "Worker died.", every rank
  is killed and the group starts again as one, after the usual back-off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from .parallel import ParallelSettings, rank_environment, reserve_port
from .types import DESCRIBE
from .worker_channel import FrameChannel, WorkerChannel
from .worker_connection import WorkerConnection
from .worker_plan import WorkerPlan
from .worker_process import spawn_worker

logger = logging.getLogger("modelserver.worker")


class GroupChannel:
    """The sockets of a group's ranks as one :class:`~modelserver.worker_channel.FrameChannel`."""

    def __init__(self, name: str, size: int, deliver: Callable[[dict[str, Any]], None], infer_to_all: bool) -> None:
        self.name = name
        self.size = size
        self._deliver = deliver
        self._infer_to_all = infer_to_all
        self._ranks: list[WorkerChannel] = []
        self._gathered: dict[str, dict[int, dict[str, Any]]] = {"hello": {}, "loaded": {}}
        self.closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def attach(self, channel: WorkerChannel) -> None:
        """Rank ``len(ranks)``'s socket is open; its closing closes the group."""
        rank = len(self._ranks)
        self._ranks.append(channel)
        channel.closed.add_done_callback(lambda closed: self._rank_closed(rank, closed))

    def on_message(self, rank: int, message: dict[str, Any]) -> None:
        kind = message["kind"]
        gathered = self._gathered.get(kind)
        if gathered is not None:
            gathered[rank] = message
            if len(gathered) == self.size:
                self._deliver(_hello(gathered) if kind == "hello" else _loaded(gathered))
        elif rank == 0:
            self._deliver(message)
        else:
            logger.warning("Rank %d sent an unexpected %r frame", rank, kind)

    def send(self, message: dict[str, Any], checked: bool = True) -> None:
        kind = message["kind"]
        if kind == "cancel":
            return
        targets = self._ranks if kind != "infer" or self._to_all(message["jobs"]) else self._ranks[:1]
        for channel in targets:
            channel.send(message, checked)

    def _to_all(self, jobs: list[list[Any]]) -> bool:
        """Every rank gets a batch unless under ``pp``; a describe job (alone in its batch) goes to rank 0 alone, as
        TorchServe sends only predictions and loads to every rank."""
        return self._infer_to_all and not (jobs and jobs[0][4] == DESCRIBE)  # a job array's method

    def close(self) -> None:
        for channel in self._ranks:
            channel.close()
        if not self.closed.done():
            self.closed.set_result(None)

    def _rank_closed(self, rank: int, future: asyncio.Future[BaseException | None]) -> None:
        if not self.closed.done():  # the first rank gone, not the group being closed by us
            logger.warning("%s: rank %d disconnected; stopping every rank of the group", self.name, rank)
            self.closed.set_result(future.result())


def _hello(hellos: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {**hellos[0], "pids": [hellos[rank].get("pid") for rank in sorted(hellos)]}


def _loaded(replies: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Loaded when every rank has; else the first failing rank's answer."""
    for rank in sorted(replies):
        reply = replies[rank]
        if reply.get("status") != 200:
            return {**reply, "message": f"rank {rank}: {reply.get('message')}"}
    return replies[0]


class WorkerGroup(WorkerConnection):
    """One worker of a model with ``torchrun`` settings: ``parallel.world_size`` processes started, watched, killed
    and restarted together."""

    def __init__(
        self,
        worker_id: int,
        plan: WorkerPlan,
        gpu_id: int | None,
        parallel: ParallelSettings,
        device_ids: tuple[int, ...] = (),
    ) -> None:
        super().__init__(worker_id, plan, gpu_id)
        self.parallel = parallel
        self._device_ids = device_ids
        self._starts = 0
        self._port: socket.socket | None = None

    async def _spawn(self) -> FrameChannel:
        size = self.parallel.world_size
        group = GroupChannel(self.name, size, self._on_message, self.parallel.infer_to_all_ranks)
        self._release_port()
        self._port = reserve_port()
        master_port = self._port.getsockname()[1]
        run_id = f"{self.plan.model_name}_{self.worker_id}"
        restarts, self._starts = self._starts, self._starts + 1
        try:
            for rank in range(size):
                env = {
                    **os.environ,
                    **self.plan.environment,
                    **rank_environment(self.parallel, rank, run_id, master_port, restarts, self._device_ids),
                }
                process, sock = await spawn_worker(
                    self.name, self.device, self.plan.model_dir, self._max_frame_size, env, rank=rank
                )
                prefix = self.name if rank == 0 else f"{self.name}-rank{rank}"
                on_metric = self._metrics.backend_line if rank == 0 else None  # a metric counted once, not per rank
                channel = await self._attach(
                    process, sock, prefix, lambda message, rank=rank: group.on_message(rank, message), on_metric
                )
                group.attach(channel)
        except BaseException:
            group.close()
            raise
        logger.info("%s: started %d ranks (pids %s)", self.name, size, " ".join(str(p) for p in self.pids))
        return group

    async def _cleanup(self) -> None:
        await super()._cleanup()
        self._release_port()

    def _release_port(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None
