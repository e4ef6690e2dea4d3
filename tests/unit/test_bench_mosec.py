"""The Mosec benchmark target's pure logic: which service and batching each scenario gets, what is unsupported, and
how the processes of Mosec's tree are told apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.scenarios import SCENARIOS_BY_NAME
from benchmarks.targets.mosec import MosecPeer, ipc_dir, role_of, service_args


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("echo-json", ["--service", "echo-json", "--max-batch-size", "1", "--max-wait-ms", "100"]),
        ("echo-binary", ["--service", "echo-bytes", "--max-batch-size", "1", "--max-wait-ms", "100"]),
        ("echo-batch8", ["--service", "echo-json", "--max-batch-size", "8", "--max-wait-ms", "5"]),
        ("cost10ms-batch1", ["--service", "cost", "--max-batch-size", "1", "--max-wait-ms", "100"]),
        ("cost10ms-batch8", ["--service", "cost", "--max-batch-size", "8", "--max-wait-ms", "5"]),
    ],
)
def test_service_args(scenario: str, expected: list[str]) -> None:
    assert MosecPeer().unsupported(SCENARIOS_BY_NAME[scenario]) is None
    assert service_args(SCENARIOS_BY_NAME[scenario]) == expected


@pytest.mark.parametrize("scenario", ["stream", "digits"])
def test_unsupported_have_reasons(scenario: str) -> None:
    assert MosecPeer().unsupported(SCENARIOS_BY_NAME[scenario])
    with pytest.raises(ValueError):
        service_args(SCENARIOS_BY_NAME[scenario])


def test_roles() -> None:
    assert role_of(["/cache/mosec-venv/bin/mosec", "/tmp/ipc/config.json"]) == "frontend"
    spawn = "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=4, pipe_handle=6)"
    assert role_of(["/v/bin/python", "-B", "-c", spawn, "--multiprocessing-fork"]) == "worker"
    tracker = "from multiprocessing.resource_tracker import main;main(3)"
    assert role_of(["/v/bin/python", "-B", "-c", tracker]) == "tracker"
    assert role_of(["/v/bin/python", "mosec_service.py", "--service", "cost"]) is None
    assert role_of([]) is None


def test_ipc_dir_stays_short(tmp_path: Path) -> None:
    assert ipc_dir(Path("/w")) == Path("/w/ipc")
    long = tmp_path / ("x" * 80)
    chosen = ipc_dir(long)
    try:
        assert len(str(chosen)) < len(str(long)) and chosen.is_dir()
    finally:
        chosen.rmdir()
