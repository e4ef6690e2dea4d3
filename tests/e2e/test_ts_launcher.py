"""A handler's own test, written for TorchServe, run by a plain ``python`` without TorchServe installed: the ``ts``
names come from ``python -m modelserver.ts_path``, and ``ts.launcher`` starts our server, registers a model over
the management API, infers and stops it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.server import ROOT, TEST_MODELS, free_port, wait_gone

pytestmark = pytest.mark.e2e

HANDLER_TEST = """
import json, sys
import requests
import ts, ts.context, ts.utils.util
from ts.torch_handler.base_handler import BaseHandler
from ts.launcher import register_model, start, stop

store, config, inference = sys.argv[1:4]
lines = start(model_store=store, snapshot_file=config, no_config_snapshots=True, disable_token=True,
              enable_model_api=True)
try:
    registered = register_model("classy", "classy")
    answer = requests.post(inference + "/predictions/classy", json=21, timeout=60)
    result = {"ts": ts.__file__, "base": BaseHandler.__name__, "register": registered.status_code,
              "answer": [answer.status_code, answer.json()], "queue": type(lines).__name__}
finally:
    stop()
print("RESULT " + json.dumps(result))
"""


def test_ts_launcher_starts_our_server_registers_infers_and_stops(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(TEST_MODELS / "classy", store / "classy")
    ports = [free_port() for _ in range(3)]
    inference = f"http://127.0.0.1:{ports[0]}"
    config = tmp_path / "config.properties"
    config.write_text(
        f"inference_address={inference}\n"
        f"management_address=http://127.0.0.1:{ports[1]}\n"
        f"metrics_address=http://127.0.0.1:{ports[2]}\n"
    )
    shim = subprocess.run(
        [sys.executable, "-m", "modelserver.ts_path"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": os.pathsep.join([shim, str(ROOT)])}
    (tmp_path / "handler_test.py").write_text(HANDLER_TEST)
    try:
        done = subprocess.run(
            [sys.executable, "handler_test.py", str(store), str(config), inference],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        _stop_leftover(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result_line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(result_line.removeprefix("RESULT "))
    assert Path(result["ts"]).parent.parent == Path(shim)
    assert result["base"] == "BaseHandler"
    assert result["register"] == 200
    assert result["answer"] == [200, {"model": "classy", "doubled": 42}]
    assert result["queue"] == "Queue"
    assert "Model server started." in done.stdout  # start() printed the server's output
    assert not (tmp_path / ".model_server.pid").exists()  # stop() stopped it
    with pytest.raises(requests.ConnectionError):
        requests.get(inference + "/ping", timeout=5)


def _stop_leftover(tmp_path: Path) -> None:
    """If the script failed before ``stop()``, end the server it started (the pid file in its TMPDIR names it)."""
    try:
        pid = int((tmp_path / ".model_server.pid").read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    wait_gone(pid, 30)
