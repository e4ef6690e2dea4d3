"""wrk's Lua script reads the request body from a file in binary mode, so any bytes are sent unchanged."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import threading
from pathlib import Path

import pytest
from aiohttp import web

from benchmarks import wrk
from benchmarks.loadgen import LoadSpec
from benchmarks.procs import free_port

AWKWARD_BODY = b"\xff\xfe\x00binary]]\r\n]=]\r\n\n" + bytes(range(256)) * 4


def spec(url: str = "http://127.0.0.1:9/x", body: bytes = AWKWARD_BODY) -> LoadSpec:
    return LoadSpec(url=url, body=body, content_type="application/octet-stream", concurrency=2, duration=1, warmup=0)


def test_the_script_loads_the_body_file_and_does_not_inline_it(tmp_path: Path) -> None:
    body_file = tmp_path / 'odd "dir" \\ name' / "body.bin"
    script = wrk.script(spec(), body_file)
    assert 'io.open("' + str(body_file).replace("\\", "\\\\").replace('"', '\\"') + '", "rb")' in script
    assert 'wrk.body = body_file:read("*a")' in script
    assert 'wrk.headers["Content-Type"] = "application/octet-stream"' in script
    assert 'wrk.method = "POST"' in script
    assert "binary]]" not in script
    assert wrk.RESULT_PREFIX in script


def test_lua_string_escapes_and_refuses_control_characters() -> None:
    assert wrk.lua_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        wrk.lua_string("line\nbreak")


def test_parse_reads_the_result_line() -> None:
    out = f'Running 1s test\n{wrk.RESULT_PREFIX}{{"requests": 5, "duration_us": 1000000}}\n'
    assert wrk.parse(out) == {"requests": 5, "duration_us": 1000000}
    with pytest.raises(RuntimeError):
        wrk.parse("nothing here\n")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_sends_a_binary_body_byte_for_byte() -> None:
    seen: set[str] = set()
    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def answer(request: web.BaseRequest) -> web.Response:
        seen.add(hashlib.sha256(await request.read()).hexdigest())
        return web.Response(body=b"ok")

    async def start() -> web.ServerRunner:
        runner = web.ServerRunner(web.Server(answer))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        result = wrk.measure(spec(f"http://127.0.0.1:{port}/x"))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert result.requests > 0 and result.errors == 0
    assert seen == {hashlib.sha256(AWKWARD_BODY).hexdigest()}
