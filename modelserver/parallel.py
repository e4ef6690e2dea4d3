"""Large model inference settings: when one worker is a group of ranks, and what each rank's environment holds.

TorchServe 0.12 reads ``parallelType`` (``tp``, ``pp``, ``pptp`` or ``custom``), ``parallelLevel`` and a ``torchrun``
map from ``model-config.yaml``; a ``torchrun`` map sets the level to its ``nproc-per-node``, and of the two keys the
one written last wins. A level above 0 starts each worker under ``torchrun``, unless the type is ``custom`` (then the
handler starts its own processes from one worker process). We start the ranks ourselves, with the variables
``torchrun`` gives them (:func:`rank_environment`): the ranks are our children, each on its own socket, so a dead rank
is seen at once and the group is stopped and started again as one.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("modelserver.parallel")

PARALLEL_TYPES = ("", "tp", "pp", "pptp", "custom")
"""TorchServe's ``ParallelType`` values ("" when the yaml names none or an unknown one)."""


class ParallelSettingError(ValueError):
    """A ``torchrun`` setting we cannot honour (more than one node)."""


@dataclass(frozen=True)
class ParallelSettings:
    parallel_type: str = ""
    level: int = 0
    """TorchServe's ``parallelLevel``: the number of ranks of one worker (0: an ordinary worker)."""
    omp_threads: int = 1
    """``torchrun.OMP_NUMBER_THREADS``: ``OMP_NUM_THREADS`` of every rank (TorchServe's default is 1)."""

    @property
    def world_size(self) -> int:
        """Processes one worker runs: ``level`` for a group, else 1."""
        return self.level if self.is_group else 1

    @property
    def is_group(self) -> bool:
        return self.level > 0 and self.parallel_type != "custom"

    @property
    def infer_to_all_ranks(self) -> bool:
        """TorchServe sends each batch to every rank, but to rank 0 alone under pipeline parallelism (``pp``), whose
        other ranks take their work from rank 0 inside the handler."""
        return self.parallel_type != "pp"


NO_PARALLEL = ParallelSettings()


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parallel_settings(yaml: Mapping[str, Any]) -> ParallelSettings:
    """The group settings of a ``model-config.yaml``, read as TorchServe's ``ModelConfig`` reads them.

    Values of the wrong type are ignored with a warning, as TorchServe does; ``nnodes`` above 1 raises
    :class:`ParallelSettingError`, since all ranks of a worker run on this host.
    """
    parallel_type, level, omp_threads = "", 0, 1
    for key, value in yaml.items():
        if key == "parallelType":
            text = str(value).strip().lower() if isinstance(value, str) else None
            if text not in PARALLEL_TYPES:
                logger.warning("Invalid parallelType %r; expected one of tp, pp, pptp, custom", value)
                text = ""
            parallel_type = text or ""
        elif key == "parallelLevel":
            number = _integer(value)
            if number is None or number < 0:
                logger.warning("Invalid parallelLevel %r; should be an integer >= 0", value)
            else:
                level = number
        elif key == "torchrun":
            if not isinstance(value, Mapping):
                logger.warning("Invalid torchrun %r; should be a map of torchrun parameters", value)
                continue
            level, omp_threads = _torchrun(value)
    return ParallelSettings(parallel_type, level, omp_threads) if level or parallel_type else NO_PARALLEL


def _torchrun(config: Mapping[str, Any]) -> tuple[int, int]:
    """``nproc-per-node`` (default 1) and ``OMP_NUMBER_THREADS`` (default 1) of a ``torchrun`` map."""
    nproc, omp_threads = 1, 1
    nnodes = _integer(config.get("nnodes", 1))
    if nnodes is not None and nnodes > 1:
        raise ParallelSettingError(f"torchrun.nnodes {nnodes}: the ranks of a worker run on one host (nnodes: 1)")
    value = config.get("nproc-per-node")
    if value is not None:
        number = _integer(value)
        if number is None or number <= 0:
            logger.warning("Invalid torchrun.nproc-per-node %r, reset to 1", value)
        else:
            nproc = number
    value = config.get("OMP_NUMBER_THREADS")
    if value is not None:
        number = _integer(value)
        if number is None or number < 1:
            logger.warning("Invalid OMP_NUMBER_THREADS %r, reset to 1", value)
        else:
            omp_threads = number
    return nproc, omp_threads


def rank_environment(
    settings: ParallelSettings,
    rank: int,
    run_id: str,
    master_port: int,
    restart_count: int = 0,
    device_ids: Sequence[int] = (),
) -> dict[str, str]:
    """What ``torchrun --nnodes 1 --nproc-per-node N`` puts in the environment of local rank ``rank``, plus what
    TorchServe adds (``LOGLEVEL``, ``OMP_NUM_THREADS``, ``CUDA_VISIBLE_DEVICES`` from ``deviceIds``).

    Rank 0 hosts the rendezvous store at ``MASTER_ADDR:MASTER_PORT`` (``init_process_group``'s ``env://``)."""
    size = str(settings.world_size)
    env = {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": size,
        "LOCAL_WORLD_SIZE": size,
        "GROUP_RANK": "0",
        "GROUP_WORLD_SIZE": "1",
        "ROLE_RANK": str(rank),
        "ROLE_WORLD_SIZE": size,
        "ROLE_NAME": "default",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(master_port),
        "TORCHELASTIC_RUN_ID": run_id,
        "TORCHELASTIC_RESTART_COUNT": str(restart_count),
        "TORCHELASTIC_MAX_RESTARTS": "0",
        "TORCHELASTIC_USE_AGENT_STORE": "False",
        "OMP_NUM_THREADS": str(settings.omp_threads),
        "LOGLEVEL": "INFO",
    }
    if device_ids:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in device_ids)
    return env


def reserve_port() -> socket.socket:
    """A TCP port for rank 0's rendezvous store, held until the group is gone.

    The socket is bound (not listening) with ``SO_REUSEADDR``, so rank 0's store, which binds with it too, can listen
    on the port, while no other bind, and no outgoing connection of another process, can take it in between: two
    groups starting together never share a store."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 0))
    return sock
