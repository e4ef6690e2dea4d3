"""Every port's own OpenAPI document, checked against the running server by schemathesis (its CLI, bounded).

The document is taken from ``OPTIONS /`` of each port; path parameters are pinned to a real model, so generated
requests reach the handlers and not only the 404s: ``mirror`` (a TorchServe handler that answers any input with
well-formed bytes) and, for the inference port again, ``kmirror`` (a KServe model that answers any input) and
``lr`` (the Angel example), so the routes shared by the protocols are tried with each.
The checks: no 5xx, only documented status codes, the documented content types, and bodies that match the documented
schemas. The scale operations are pinned to one worker so that generated numbers start no swarm of processes (and
never scale the model to zero, which would turn later inferences into 503s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.server import EXAMPLE_MODELS, TEST_MODELS, RunningServer, start_server

pytestmark = pytest.mark.e2e

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
CONFIG = """\
[parameters]
"path.model_name" = "{model}"
"path.model_version" = "1.0"
"query.model_name" = "{model}"
"query.min_worker" = 1
"query.max_worker" = 1
"query.model_version" = "1.0"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    models = {"mirror": TEST_MODELS / "mirror", "kmirror": TEST_MODELS / "kmirror", "lr": EXAMPLE_MODELS / "lr"}
    # POST /workflows takes any url: no generated URL may be fetched (nor a local file be read as a .war)
    properties = {"allowed_urls": "file:///nowhere-at-all/.*"}
    running = start_server(tmp_path_factory.mktemp("conformance"), models, properties=properties)
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize(
    ("port", "model"),
    [
        ("inference", "mirror"),
        ("inference", "kmirror"),
        ("inference", "lr"),
        ("management", "mirror"),
        ("metrics", "mirror"),
    ],
)
def test_the_server_conforms_to_its_own_openapi_document(
    server: RunningServer, port: str, model: str, tmp_path: Path
) -> None:
    base = getattr(server, port)
    response = requests.options(base + "/", timeout=10)
    assert response.status_code == 200
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(response.json()))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(model=model))
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(schema)),
        *("--url", base, "--checks", CHECKS, "--max-examples", "6", "--seed", "1"),
        *("--phases", "examples,coverage,fuzzing", "--request-timeout", "20", "--no-shrink"),
        *("--suppress-health-check", "all", "--warnings", "off"),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-12000:]
    assert "No issues found" in output or "passed" in output.lower(), output[-4000:]
    assert requests.post(server.inference + "/predictions/mirror", data=b"alive", timeout=10).content == b"alive"
