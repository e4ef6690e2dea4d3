"""Large model inference (docs/large_models.md): a ``torchrun`` model's worker is a group of ranks, on the CPU with
gloo. Two models share one server, with 2 and 4 ranks (a rank imports torch: about 1-2 s each)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.server import TEST_MODELS, RunningServer, start_server, wait_gone

pytestmark = pytest.mark.e2e
pytest.importorskip("torch")

RANKS = {"tp2": 2, "tp4": 4, "pp2": 2}


def group_model(tmp: Path, name: str, ranks: int) -> Path:
    """The all-reduce test model renamed ``name``, with ``nproc-per-node: ranks`` and the ``parallelType`` its name
    starts with."""
    target = tmp / "sources" / name
    shutil.copytree(TEST_MODELS / "allreduce", target, ignore=shutil.ignore_patterns("__pycache__"))
    manifest_path = target / "MAR-INF" / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["modelName"] = name
    manifest_path.write_text(json.dumps(manifest))
    config = target / "model-config.yaml"
    text = config.read_text().replace("nproc-per-node: 2", f"nproc-per-node: {ranks}")
    config.write_text(text.replace("parallelType: tp", f"parallelType: {name[:2]}"))
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    tmp = tmp_path_factory.mktemp("lmi")
    models = {name: group_model(tmp, name, ranks) for name, ranks in RANKS.items()}
    running = start_server(tmp, models, properties={"ipex_enable": "true"}, wait_models=())
    running.wait_ready(models, timeout=180)
    yield running
    assert running.stop() == 0


def predict(server: RunningServer, model: str, body: dict, timeout: float = 60) -> requests.Response:
    return requests.post(f"{server.inference}/predictions/{model}", json=body, timeout=timeout)


def rank_pids(server: RunningServer, model: str) -> dict[int, int]:
    """Rank -> pid of the model's worker group, from the processes' command lines (``--name W-... --rank R``)."""
    worker = server.describe(model)[0]["workers"][0]
    name = f"W-{worker['id']}-{model}_1.0"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "workers" in args and "--rank" in args and "--name" in args and args[args.index("--name") + 1] == name:
            found[int(args[args.index("--rank") + 1])] = int(entry.name)
    return found


def resident(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("model", ["tp2", "tp4"])
def test_every_rank_gets_the_request_and_torchrun_environment(server: RunningServer, model: str) -> None:
    ranks = RANKS[model]
    response = predict(server, model, {"value": 3})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["sum"] == 3 * ranks * (ranks + 1) / 2  # every rank added value * (rank + 1) of the same request
    assert (answer["world_size"], answer["rank"], answer["parallel_type"]) == (ranks, 0, "tp")
    environments = answer["environments"]
    assert [env["RANK"] for env in environments] == [str(r) for r in range(ranks)]
    assert [env["LOCAL_RANK"] for env in environments] == [str(r) for r in range(ranks)]
    assert (
        {env["WORLD_SIZE"] for env in environments} == {env["LOCAL_WORLD_SIZE"] for env in environments} == {str(ranks)}
    )
    assert len({(env["MASTER_ADDR"], env["MASTER_PORT"]) for env in environments}) == 1
    assert {env["TS_IPEX_ENABLE"] for env in environments} == {"true"}  # TorchServe's backend settings reach each rank
    assert answer["pid"] == rank_pids(server, model)[0] == server.worker_pids(model)[0]
    assert len(set(answer["calls"])) == 1  # every rank ran handle() as often as rank 0


def test_under_pipeline_parallelism_only_rank_0_is_sent_batches(server: RunningServer) -> None:
    for expected in (1, 2, 3):
        response = predict(server, "pp2", {"value": 1})
        assert response.status_code == 200, response.text
        assert response.json() == {"rank": 0, "calls": [expected, 0]}
    assert server.describe("pp2")[0]["parallelType"] == "pp"


def test_concurrent_requests_run_in_lockstep_on_every_rank(server: RunningServer) -> None:
    values = list(range(1, 13))
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda v: predict(server, "tp4", {"value": v}), values))
    assert [a.status_code for a in answers] == [200] * len(values)
    assert [a.json()["sum"] for a in answers] == [v * 10 for v in values]


def test_describe_shows_the_group_and_its_memory(server: RunningServer) -> None:
    described = server.describe("tp4")[0]
    assert (described["parallelType"], described["parallelLevel"]) == ("tp", 4)
    worker = described["workers"][0]
    pids = rank_pids(server, "tp4")
    assert sorted(pids) == [0, 1, 2, 3]
    assert worker["pid"] == pids[0]
    everyone = sum(resident(pid) for pid in pids.values())
    assert 0.8 * everyone < worker["memoryUsage"] < 1.25 * everyone
    assert worker["memoryUsage"] > 2.5 * resident(pids[0])  # the other ranks count too


def test_stream_comes_from_rank_0_alone(server: RunningServer) -> None:
    with requests.post(
        f"{server.inference}/predictions/tp2", json={"value": 1, "stream": 3}, stream=True, timeout=60
    ) as response:
        assert response.status_code == 200
        pieces = [json.loads(chunk) for chunk in response.raw.read_chunked(decode_content=False)]
    assert [piece.get("step") for piece in pieces[:-1]] == [0, 1, 2]  # once each, not once per rank
    assert [piece["sum"] for piece in pieces[:-1]] == [3.0, 6.0, 9.0]
    assert pieces[-1]["sum"] == 3.0


def test_a_dead_rank_fails_the_request_in_flight_and_restarts_the_whole_group(server: RunningServer) -> None:
    before = rank_pids(server, "tp2")
    assert sorted(before) == [0, 1]
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(predict, server, "tp2", {"value": 1, "sleep": 3})
        time.sleep(1.0)  # both ranks are in the handler now
        killed_at = time.monotonic()
        os.kill(before[1], signal.SIGKILL)
        response = in_flight.result(timeout=30)
    assert response.status_code == 500
    assert time.monotonic() - killed_at < 5  # answered when the rank died, not after a collective's timeout
    wait_gone(before[0])
    with pytest.raises(ProcessLookupError):
        os.kill(before[0], 0)  # rank 0 was stopped with it
    server.wait_ready(["tp2"], timeout=60)
    after = rank_pids(server, "tp2")
    assert sorted(after) == [0, 1] and not set(after.values()) & set(before.values())
    answer = predict(server, "tp2", {"value": 2})
    assert answer.status_code == 200 and answer.json()["sum"] == 6.0


def test_a_customized_describe_goes_to_rank_0_alone_as_in_torchserve(server: RunningServer) -> None:
    url = f"{server.management}/models/tp2?customized=true"
    first = requests.get(url, timeout=30).json()[0]["customizedMetadata"]
    second = requests.get(url, timeout=30).json()[0]["customizedMetadata"]
    assert (first, second) == ({"describes": [1, 0]}, {"describes": [2, 0]})
