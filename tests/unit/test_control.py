"""The control channel of several frontend processes: its messages (the workers' framing, kinds of its own) and the
supervisor's routing of a call to every other frontend, over real Unix sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import msgpack
import pytest

from modelserver.control import (
    Answers,
    ControlChannel,
    ControlDecoder,
    ControlLink,
    check,
    decode,
    encode,
    receive_blocking,
)
from modelserver.control_hub import Hub
from workers.protocol import ATTACHMENT_FLAG, HEADER, ProtocolError


def frames(message: dict[str, Any]) -> bytes:
    return b"".join(bytes(part) for part in encode(message))


def test_messages_round_trip_through_the_decoder() -> None:
    message = {"kind": "call", "id": 7, "op": "metrics", "args": {"names": ["a"]}, "timeout": 2.5}
    decoder = ControlDecoder()
    data = frames(message) + frames({"kind": "started"})
    assert decoder.feed(data[:5]) == []
    assert decoder.feed(data[5:]) == [message, {"kind": "started"}]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"kind": "load", "model_name": "m"}, "unknown control message kind 'load'"),
        ({"kind": "reply", "id": 1}, "missing value"),
        ({"id": 1}, "unknown control message kind None"),
        ([1, 2], "must be a map"),
    ],
)
def test_bad_messages_are_refused(message: Any, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        check(message)
    payload = msgpack.packb(message)
    with pytest.raises(ProtocolError, match=error):
        decode(payload)


def test_ext_types_and_attachments_are_refused() -> None:
    with pytest.raises(ProtocolError, match="ext"):
        decode(msgpack.packb({"kind": "started", "x": msgpack.ExtType(1, b"z")}))
    decoder = ControlDecoder()
    attachment = HEADER.pack(ATTACHMENT_FLAG | 3) + b"abc"
    with pytest.raises(ProtocolError, match="attachment"):
        decoder.feed(attachment + frames({"kind": "started"}))


def test_the_handshake_keeps_what_came_with_the_setup() -> None:
    """A frontend reads its setup before its event loop runs; an ask that came in the same read, and half of the
    next one, must not be lost: the messages are handed back and the decoder goes on with the rest."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        setup = {"kind": "setup", "config": {}, "restart": False, "count": 2}
        first = {"kind": "ask", "id": 1, "op": "health", "args": None}
        second = frames({"kind": "ask", "id": 2, "op": "metrics", "args": None})
        theirs.sendall(frames(setup) + frames(first) + second[:7])
        decoder = ControlDecoder()
        assert receive_blocking(ours, decoder) == [setup, first]
        assert decoder.feed(second[7:]) == [{"kind": "ask", "id": 2, "op": "metrics", "args": None}]


async def hub_with(tmp_path: Path, handlers: list[dict[str, Any]]) -> tuple[Hub, list[ControlLink], list[Any]]:
    """A hub and one connected link per entry of ``handlers`` (its ops), every link said hello."""
    hellos: list[int] = []
    hub = Hub(len(handlers), lambda index, pid, channel: hellos.append(index), lambda index: None)
    path = str(tmp_path / "control.sock")
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(hub.connection, path)
    links = []
    for index, ops in enumerate(handlers):
        link = ControlLink(ops)
        _, channel = await loop.create_unix_connection(
            lambda link=link: ControlChannel(link.on_message, link.closed), path
        )
        link.channel = channel
        link.send({"kind": "hello", "index": index, "pid": os.getpid()})
        links.append(link)
    while len(hellos) < len(handlers):
        await asyncio.sleep(0.01)
    return hub, links, [server]


def answering(index: int) -> dict[str, Any]:
    async def echo(args: Any) -> Any:
        return [index, args]

    async def fail(args: Any) -> Any:
        raise ValueError(f"frontend {index} cannot")

    async def slow(args: Any) -> Any:
        await asyncio.sleep(10 if index == 2 else 0)
        return index

    return {"echo": echo, "fail": fail, "slow": slow}


def test_a_call_reaches_every_other_frontend(tmp_path: Path) -> None:
    asyncio.run(_a_call_reaches_every_other_frontend(tmp_path))


async def _a_call_reaches_every_other_frontend(tmp_path: Path) -> None:
    _, links, _ = await hub_with(tmp_path, [answering(i) for i in range(3)])
    answers = await links[1].call("echo", {"x": 1}, timeout=5)
    assert answers == Answers({0: [0, {"x": 1}], 2: [2, {"x": 1}]}, {}, [])


def test_errors_timeouts_and_gone_frontends_are_told_apart(tmp_path: Path) -> None:
    asyncio.run(_errors_timeouts_and_gone_frontends_are_told_apart(tmp_path))


async def _errors_timeouts_and_gone_frontends_are_told_apart(tmp_path: Path) -> None:
    _, links, _ = await hub_with(tmp_path, [answering(i) for i in range(4)])
    failed = await links[0].call("fail", None, timeout=5)
    assert failed.values == {} and sorted(failed.errors) == [1, 2, 3]
    assert "ValueError: frontend 1 cannot" in failed.errors[1]
    unknown = await links[0].call("nothing", None, timeout=5)
    assert "unknown op" in unknown.errors[3]
    slow = await links[0].call("slow", None, timeout=0.3)
    assert slow.values == {1: 1, 3: 3} and slow.missing == [2]
    assert links[3].channel is not None
    links[3].channel.close()
    await asyncio.sleep(0.05)
    gone = await links[0].call("echo", None, timeout=5)
    assert sorted(gone.values) == [1, 2] and gone.missing == [3]


def test_a_lone_frontend_gets_an_answer_at_once(tmp_path: Path) -> None:
    asyncio.run(_a_lone_frontend_gets_an_answer_at_once(tmp_path))


async def _a_lone_frontend_gets_an_answer_at_once(tmp_path: Path) -> None:
    _, links, _ = await hub_with(tmp_path, [answering(0)])
    assert await asyncio.wait_for(links[0].call("echo", None, timeout=60), 1) == Answers()


def test_a_second_hello_for_the_same_index_is_refused(tmp_path: Path) -> None:
    asyncio.run(_a_second_hello_for_the_same_index_is_refused(tmp_path))


async def _a_second_hello_for_the_same_index_is_refused(tmp_path: Path) -> None:
    hub, _, _ = await hub_with(tmp_path, [answering(0), answering(1)])
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    _, channel = await loop.create_unix_connection(
        lambda: ControlChannel(lambda message: None, closed.set), str(tmp_path / "control.sock")
    )
    channel.send({"kind": "hello", "index": 1, "pid": os.getpid()})
    await asyncio.wait_for(closed.wait(), 2)
    assert sorted(hub.channels) == [0, 1]
