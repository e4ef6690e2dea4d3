"""README.md's "Try it", run as a newcomer runs it: every command of the section, in order, with ``bash`` in a
second "terminal" against the server started from the README's ``config.properties`` and example models; each
command's output must be what the README shows under it.

The README's rules for an expected output: a line holding only ``...`` stands for any lines (none included); ``...``
inside a line stands for any text on that line; numbers match within a relative 1e-3 (other CPUs round floats
differently). Ports 8080/8081/8082 become this test's free ports.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server import EXAMPLE_MODELS, ROOT, RunningServer, start_server

pytestmark = pytest.mark.e2e

NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
ACTIVATE = ". .venv/bin/activate"


@dataclass(frozen=True)
class Example:
    command: str
    expected: str | None


def try_it(readme: str) -> list[Example]:
    """The section's ``bash`` blocks, each with the ``text`` block right after it (None when there is none)."""
    section = readme.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```\n", section, flags=re.DOTALL)
    examples = []
    for index, (kind, body) in enumerate(blocks):
        if kind != "bash":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = following[1] if following is not None and following[0] == "text" else None
        examples.append(Example(body.strip(), None if expected is None else expected.rstrip("\n")))
    return examples


def _line_pattern(expected: str) -> tuple[re.Pattern[str], list[float]]:
    pieces, numbers = [], []
    for literal in expected.split("..."):
        parts = []
        for token in re.split(f"({NUMBER})", literal):
            if re.fullmatch(NUMBER, token):
                parts.append(f"({NUMBER})")
                numbers.append(float(token))
            else:
                parts.append(re.escape(token))
        pieces.append("".join(parts))
    return re.compile("(?:.*?)".join(pieces)), numbers


def line_matches(expected: str, actual: str) -> bool:
    pattern, numbers = _line_pattern(expected)
    found = pattern.fullmatch(actual)
    if found is None:
        return False
    return all(
        math.isclose(float(got), want, rel_tol=1e-3, abs_tol=1e-12)
        for got, want in zip(found.groups(), numbers, strict=True)
    )


def output_matches(expected: str, actual: str) -> bool:
    want, got = expected.split("\n"), actual.rstrip("\n").split("\n")

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and line_matches(want[i], got[j]) and match(i + 1, j + 1)

    return match(0, 0)


def test_the_output_rules_refuse_what_differs() -> None:
    shown = '{\n  "seven": 0.99997,\n  "pid": ...,\n...\n}'
    assert output_matches(shown, '{\n  "seven": 0.999973,\n  "pid": 812,\n  "a": 1,\n  "b": 2\n}\n')
    assert output_matches(shown, '{\n  "seven": 0.99997,\n  "pid": 1,\n}')
    assert not output_matches(shown, '{\n  "seven": 0.98,\n  "pid": 812,\n}')  # a number off
    assert not output_matches(shown, '{\n  "eight": 0.99997,\n  "pid": 812,\n}')  # a word off
    assert not output_matches(shown, '{"seven": 0.99997, "pid": 812}')  # one line where the README shows several
    assert not output_matches("hello", "hello\nworld")


def test_every_try_it_command_shows_its_output() -> None:
    examples = try_it((ROOT / "README.md").read_text())
    assert examples[0] == Example(ACTIVATE, None)  # the second terminal's venv, said before anything else
    assert len(examples) > 15 and all(example.expected is not None for example in examples[1:])
    assert examples[-1].command == "modelserver --stop"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """The README's first command: the examples built, the server started on the README's config.properties."""
    tmp = tmp_path_factory.mktemp("readme")
    store, work = tmp / "model_store", tmp / "work"
    command = [sys.executable, "-m", "examples", "--out", str(store), "--work", str(work)]
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    properties = {}
    for line in (ROOT / "config.properties").read_text().splitlines():
        key, _, value = line.partition("=")
        if line and not line.startswith("#") and not key.endswith("_address"):
            properties[key.strip()] = value.strip()
    properties["model_store"] = str(store)
    models = {"echo": EXAMPLE_MODELS / "echo", "linear": EXAMPLE_MODELS / "linear"}
    running = start_server(tmp, models, properties, wait_models=["digits", "echo", "linear", "text"])
    terminal = tmp / "terminal"  # the second terminal's working directory: the repository as the README sees it
    (terminal / "examples").mkdir(parents=True)
    (terminal / "examples" / "build").symlink_to(work)
    (terminal / "examples" / "model_store").symlink_to(EXAMPLE_MODELS)
    (terminal / "README.md").symlink_to(ROOT / "README.md")
    running.extra["terminal"] = str(terminal)
    yield running
    running.stop()


def run(command: str, server: RunningServer, env: dict[str, str]) -> tuple[int, str]:
    """``bash -c command`` in the second terminal; the server is reaped meanwhile, as the first terminal's shell
    would reap it (``modelserver --stop`` waits until the server's pid is gone). Output goes through a file: a long
    answer would fill a pipe nobody reads while we poll."""
    terminal = Path(server.extra["terminal"])
    with (terminal.parent / "stdout").open("w+") as out, (terminal.parent / "stderr").open("w+") as err:
        process = subprocess.Popen(["bash", "-c", command], cwd=terminal, env=env, stdout=out, stderr=err)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            server.process.poll()
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
        returncode = process.wait()
        out.seek(0)
        err.seek(0)
        printed = out.read()
        return returncode, printed if returncode == 0 else printed + err.read()


def test_try_it_prints_what_the_readme_shows(server: RunningServer) -> None:
    if shutil.which("curl") is None:
        pytest.skip("README commands need curl, which is not installed")
    ports = {"8080": server.inference, "8081": server.management, "8082": server.metrics}
    env = {**os.environ, "TMPDIR": str(server.workdir)}  # where `modelserver --stop` finds the server's pid file
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # the venv, activated
    failures = []
    for example in try_it((ROOT / "README.md").read_text())[1:]:
        command = re.sub(r"http://127\.0\.0\.1:(808[012])", lambda m: ports[m[1]], example.command)
        done = run(command, server, env)
        assert example.expected is not None
        returncode, printed = done
        if returncode != 0 or not output_matches(example.expected, printed):
            failures.append(f"$ {example.command}\n--- README:\n{example.expected}\n--- printed:\n{printed}")
    assert not failures, "\n\n".join(failures)
    assert server.process.wait(30) == 0  # `modelserver --stop` stopped it, as the README says
