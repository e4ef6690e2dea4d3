"""Large model settings: TorchServe's reading of ``parallelType``/``parallelLevel``/``torchrun``, and the ranks'
environment."""

from __future__ import annotations

import socket

import pytest
import yaml

from modelserver.parallel import (
    NO_PARALLEL,
    ParallelSettingError,
    ParallelSettings,
    parallel_settings,
    rank_environment,
    reserve_port,
)


def settings(text: str) -> ParallelSettings:
    return parallel_settings(yaml.safe_load(text))


def test_torchrun_makes_each_worker_a_group_of_nproc_per_node_ranks() -> None:
    parsed = settings("parallelType: tp\ntorchrun:\n  nproc-per-node: 4\n")
    assert (parsed.parallel_type, parsed.level, parsed.world_size, parsed.is_group) == ("tp", 4, 4, True)
    assert parsed.infer_to_all_ranks
    assert settings("minWorkers: 1\n") is NO_PARALLEL
    assert NO_PARALLEL.world_size == 1 and not NO_PARALLEL.is_group


def test_the_key_written_last_sets_the_level_as_in_torchserve() -> None:
    assert settings("parallelLevel: 3\ntorchrun:\n  nproc-per-node: 2\n").level == 2
    assert settings("torchrun:\n  nproc-per-node: 2\nparallelLevel: 3\n").level == 3
    assert settings("torchrun: {}\n").level == 1  # nproc-per-node defaults to 1


def test_custom_runs_one_process_and_pp_sends_batches_to_rank_0_alone() -> None:
    custom = settings("parallelType: custom\nparallelLevel: 4\n")
    assert (custom.level, custom.is_group, custom.world_size) == (4, False, 1)
    pipeline = settings("parallelType: PP\ntorchrun:\n  nproc-per-node: 2\n")
    assert pipeline.parallel_type == "pp" and pipeline.is_group and not pipeline.infer_to_all_ranks


def test_bad_values_are_ignored_as_torchserve_ignores_them() -> None:
    text = "parallelType: zz\nparallelLevel: two\ntorchrun:\n  nproc-per-node: -1\n  OMP_NUMBER_THREADS: x\n"
    parsed = settings(text)
    assert (parsed.parallel_type, parsed.level, parsed.omp_threads) == ("", 1, 1)
    assert settings("torchrun: 4\n") is NO_PARALLEL


def test_more_than_one_node_is_refused() -> None:
    with pytest.raises(ParallelSettingError, match="nnodes 2"):
        settings("torchrun:\n  nnodes: 2\n  nproc-per-node: 2\n")


def test_rank_environment_is_torchruns_plus_torchserves() -> None:
    parsed = settings("torchrun:\n  nproc-per-node: 4\n  OMP_NUMBER_THREADS: 2\n")
    env = rank_environment(parsed, 3, "m_9000", 29500, restart_count=1, device_ids=(2, 3))
    assert env["RANK"] == env["LOCAL_RANK"] == env["ROLE_RANK"] == "3"
    assert env["WORLD_SIZE"] == env["LOCAL_WORLD_SIZE"] == env["ROLE_WORLD_SIZE"] == "4"
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29500")
    assert (env["TORCHELASTIC_RUN_ID"], env["TORCHELASTIC_RESTART_COUNT"]) == ("m_9000", "1")
    assert (env["OMP_NUM_THREADS"], env["CUDA_VISIBLE_DEVICES"], env["LOGLEVEL"]) == ("2", "2,3", "INFO")
    assert "CUDA_VISIBLE_DEVICES" not in rank_environment(parsed, 0, "m_9000", 29500)


def test_a_reserved_port_is_free_for_rank_0s_store_alone() -> None:
    with reserve_port() as reservation:
        port = reservation.getsockname()[1]
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("", port))
        with reserve_port() as second:
            assert second.getsockname()[1] != port
        with socket.socket() as store:  # binds as torch's TCPStore does, with SO_REUSEADDR
            store.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            store.bind(("", port))
            store.listen()
