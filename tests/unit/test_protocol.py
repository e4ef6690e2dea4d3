"""Tests for workers/protocol.py (framing, validation), workers/frame_decoder.py and workers/socket_channel.py."""

from __future__ import annotations

import itertools
import socket
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.frame_decoder import BOUNDARY_READ, FrameDecoder
from workers.protocol import (
    ATTACH_MIN,
    ATTACHMENT_FLAG,
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    ITEM_OPTIONAL_FIELDS,
    JOB_FIELDS,
    JOB_OPTIONAL_FIELDS,
    MAX_FRAME_SIZE_LIMIT,
    PROTOCOL_VERSION,
    REQUIRED_FIELDS,
    SMALL_FRAME_SIZE,
    Attached,
    ProtocolError,
    attach,
    decode_payload,
    encode,
    encode_parts,
    header_items,
    item_to_wire,
    job_from_wire,
    job_to_wire,
    max_frame_size_for,
)
from workers.socket_channel import HOLD_LIMIT, SocketChannel

TIMEOUT = 10.0

# --- strategies --------------------------------------------------------------------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=200)
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _message_of(kind: str) -> st.SearchStrategy[dict]:
    fields = st.fixed_dictionaries(
        dict.fromkeys(REQUIRED_FIELDS[kind], values),
        optional={"body": st.binary(max_size=2000), "extra": values, "ünï": st.text()},
    )
    return fields.map(lambda found: {**found, "kind": kind})


messages = st.sampled_from(sorted(REQUIRED_FIELDS)).flatmap(_message_of)


# --- helpers -----------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def packed(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def feed_in_pieces(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[dict]:
    """Feed ``data`` split at the sorted positions in ``cuts``."""
    out: list[dict] = []
    bounds = [0, *sorted(cuts), len(data)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        out.extend(decoder.feed(data[start:end]))
    return out


def receive_like_asyncio(decoder: FrameDecoder, data: bytes, read_sizes: Iterator[int]) -> list[dict]:
    """Play the event loop: recv_into the buffer from get_buffer at most ``size`` bytes at a time."""
    out: list[dict] = []
    offset = 0
    while offset < len(data):
        buffer = decoder.get_buffer(-1)
        assert len(buffer) > 0
        count = min(len(buffer), next(read_sizes), len(data) - offset)
        buffer[:count] = data[offset : offset + count]
        offset += count
        out.extend(decoder.buffer_updated(count))
    return out


def item(job_id: int, body: bytes) -> dict:
    return {"id": job_id, "status": 200, "reason": "", "headers": {}, "content_type": "text/plain", "body": body}


def chunk(job_id: int, body: bytes) -> dict:
    """A ``chunk`` frame: its item as the wire carries one (``item_to_wire``), the body inside the map."""
    return {"kind": "chunk", "item": item_to_wire(item(job_id, body), attaching=False)}


def wire_job(job: dict) -> list:
    """A job map as the ``infer`` frame carries it."""
    optional = {key: value for key, value in job.items() if key in JOB_OPTIONAL_FIELDS} or None
    return job_to_wire(job["id"], job["request_id"], job["headers"], job["inputs"], job["method"], optional)


def realistic_messages() -> list[dict]:
    job = {
        "id": 7,
        "request_id": "3f0c6c9e-0d57-4c5e-9f0e-5ad3c0a1b2c3",
        "headers": {"Content-Type": "image/jpeg", "data": "x"},
        "inputs": [["data", "image/jpeg", b"\xff\xd8\xff\x00binary"]],
        "method": "predict",
        "url_path": "extra/path",
        "tensors": [{"name": "t", "datatype": "FP32", "shape": [2], "data": b"\0" * 8, "parameters": {"x": 1}}],
        "parameters": {"temperature": 0.5},
        "outputs": [{"name": "scores", "parameters": {"binary_data": True}}, {"name": "labels"}],
        "infer_id": "client-id-1",
    }
    return [
        {"kind": "hello", "version": PROTOCOL_VERSION, "pid": 1234, "device": "cuda:0"},
        {
            "kind": "load",
            "model_name": "m",
            "model_version": "1.0",
            "model_dir": "/tmp/m",
            "handler": "image_classifier",
            "runtime": "torchserve",
            "batch_size": 4,
            "gpu_id": None,
            "envelope": "",
            "limit_max_image_pixels": True,
            "decode_input_request": True,
            "manifest": {"model": {"modelName": "m"}},
            "model_yaml_config": {},
        },
        {"kind": "loaded", "status": 200, "message": "loaded"},
        {"kind": "infer", "jobs": [wire_job(job)]},
        {
            "kind": "result",
            "items": [
                item_to_wire(each, attaching=False)
                for each in (
                    item(7, b"\x00\x01"),
                    {**item(8, b""), "error": "boom"},
                    {
                        **item(9, b""),
                        "tensors": [{"name": "out", "datatype": "BYTES", "shape": [1], "data": b"\1\0\0\0z"}],
                        "parameters": {"sequence_end": True},
                    },
                )
            ],
        },
        chunk(7, "ünïcødé".encode()),
        {"kind": "cancel", "ids": [7, 8]},
        {"kind": "shutdown"},
    ]


@contextmanager
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    left.settimeout(TIMEOUT)
    right.settimeout(TIMEOUT)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


@contextmanager
def in_thread(target: Callable[[], None]) -> Iterator[None]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as err:  # reported to the test below
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "sender thread hung"
    assert not errors, errors


# --- encode ------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", realistic_messages(), ids=lambda m: m["kind"])
def test_encode_frame_layout(message: dict) -> None:
    data = encode(message)
    assert isinstance(data, bytes)
    (length,) = HEADER.unpack_from(data)
    assert length == len(data) - HEADER.size
    assert msgpack.unpackb(data[HEADER.size :], raw=False) == message
    assert decode_payload(data[HEADER.size :]) == message


def test_encode_accepts_any_mapping() -> None:
    message = types.MappingProxyType({"kind": "cancel", "ids": [1]})
    assert FrameDecoder().feed(encode(message)) == [{"kind": "cancel", "ids": [1]}]


@pytest.mark.parametrize(
    "message",
    [
        {"ids": [1]},
        {"kind": b"cancel", "ids": [1]},
        {"kind": "nope"},
        {"kind": "cancel"},
        {"kind": "loaded", "status": 200},
        {"kind": "cancel", "ids": object()},
        {"kind": "cancel", "ids": 2**64},
        [("kind", "shutdown")],
        "shutdown",
    ],
)
def test_encode_rejects_bad_messages(message: Any) -> None:
    with pytest.raises(ProtocolError):
        encode(message)


def test_encode_rejects_oversized_frame() -> None:
    message = chunk(1, b"x" * 1000)
    assert encode(message, max_frame_size=2000)
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(message, max_frame_size=1000)


def test_frame_size_limits() -> None:
    assert DEFAULT_MAX_FRAME_SIZE == 64 * 1024 * 1024 + 2 * 6_553_500
    assert max_frame_size_for(6_553_500, 2) == DEFAULT_MAX_FRAME_SIZE
    assert max_frame_size_for(2**31, 8) == MAX_FRAME_SIZE_LIMIT
    with pytest.raises(ValueError):
        max_frame_size_for(100, 0)
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_size=0)
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_size=2**32)


# --- FrameDecoder round trips ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(messages, min_size=1, max_size=5), data=st.data())
def test_feed_roundtrip_split_anywhere(batch: list[dict], data: st.DataObject) -> None:
    stream = b"".join(encode(message) for message in batch)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts")
    assert feed_in_pieces(FrameDecoder(), stream, cuts) == batch


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(messages, min_size=1, max_size=3))
def test_feed_roundtrip_one_byte_at_a_time(batch: list[dict]) -> None:
    stream = b"".join(encode(message) for message in batch)
    decoder = FrameDecoder()
    assert feed_in_pieces(decoder, stream, list(range(1, len(stream)))) == batch
    assert decoder.pending == 0
    decoder.check_eof()


@settings(max_examples=300, deadline=None)
@given(
    batch=st.lists(messages, min_size=1, max_size=5),
    read_sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=20),
)
def test_buffered_protocol_roundtrip(batch: list[dict], read_sizes: list[int]) -> None:
    stream = b"".join(encode(message) for message in batch)
    sizes = iter(read_sizes * (len(stream) // min(read_sizes) + 1))
    assert receive_like_asyncio(FrameDecoder(), stream, sizes) == batch


def test_multiple_frames_in_one_feed() -> None:
    batch = realistic_messages()
    stream = b"".join(encode(message) for message in batch)
    assert FrameDecoder().feed(stream) == batch
    assert FrameDecoder().feed(stream * 50) == batch * 50


@pytest.mark.parametrize("piece", [997, 4096, SMALL_FRAME_SIZE, 256 * 1024, 1 << 30])
def test_mixed_small_and_large_frames(piece: int) -> None:
    sizes = [0, 10, SMALL_FRAME_SIZE - 200, SMALL_FRAME_SIZE + 1, 100_000, 300_000, 1_000_000, 5]
    batch = [chunk(n, bytes([n % 251]) * n) for n in sizes]
    stream = b"".join(encode(message) for message in batch)
    cuts = list(range(piece, len(stream), piece))
    assert feed_in_pieces(FrameDecoder(), stream, cuts) == batch


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 400_000), min_size=1, max_size=4), data=st.data())
def test_roundtrip_large_frames_split_anywhere(sizes: list[int], data: st.DataObject) -> None:
    batch = [chunk(n, bytes([n % 251]) * n) for n in sizes]
    stream = b"".join(encode(message) for message in batch)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts")
    assert feed_in_pieces(FrameDecoder(), stream, cuts) == batch
    read_sizes = data.draw(st.lists(st.integers(512, 1 << 20), min_size=1, max_size=10), label="read_sizes")
    sizes_iter = itertools.cycle(read_sizes)
    assert receive_like_asyncio(FrameDecoder(), stream, sizes_iter) == batch


def test_large_payload_is_received_in_place() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    data = encode(chunk(1, body))
    length = len(data) - HEADER.size
    decoder = FrameDecoder()
    assert decoder.feed(data[:100]) == []
    buffer = decoder.get_buffer(-1)
    assert len(buffer) == length - 96  # exactly the rest of this payload, nothing shared
    buffer[:1000] = data[100:1100]
    assert decoder.buffer_updated(1000) == []
    assert decoder.pending == 1100
    assert len(decoder.get_buffer(-1)) == length - 1096
    [message] = decoder.feed(data[1100:])
    assert message["item"][5] == body
    assert decoder.pending == 0
    assert len(decoder.get_buffer(-1)) == BOUNDARY_READ  # back to the shared buffer, at a frame boundary


def test_a_large_payload_is_copied_at_most_a_boundary_read() -> None:
    """At a frame boundary a read takes at most BOUNDARY_READ bytes: of a large payload that first read brings, only
    that much is copied into the payload's own buffer; the rest is received in place."""
    body = bytes(range(256)) * 4096  # 1 MiB
    data = encode(chunk(1, body))
    decoder = FrameDecoder()
    first = decoder.get_buffer(-1)
    assert len(first) == BOUNDARY_READ < SMALL_FRAME_SIZE
    first[:] = data[: len(first)]
    assert decoder.buffer_updated(len(first)) == []
    assert decoder.pending == len(first)
    rest = decoder.get_buffer(-1)
    assert len(rest) == len(data) - len(first)  # the payload's own buffer: nothing more was copied
    rest[:] = data[len(first) :]
    [message] = decoder.buffer_updated(len(rest))
    assert message["item"][5] == body
    small = encode(chunk(2, b"x" * 1000))
    first = decoder.get_buffer(-1)
    first[:100] = small[:100]
    assert decoder.buffer_updated(100) == []
    assert len(decoder.get_buffer(-1)) > SMALL_FRAME_SIZE  # a partial frame pending: the shared buffer's free tail


def test_a_small_frame_longer_than_a_boundary_read_takes_a_second_read() -> None:
    data = encode(chunk(3, b"y" * (3 * BOUNDARY_READ)))  # small (under SMALL_FRAME_SIZE), yet past one boundary read
    decoder = FrameDecoder()
    first = decoder.get_buffer(-1)
    first[:] = data[: len(first)]
    assert decoder.buffer_updated(len(first)) == []
    rest = decoder.get_buffer(-1)
    assert len(rest) >= len(data) - len(first)  # the shared buffer's tail: the frame is assembled in place
    rest[: len(data) - len(first)] = data[len(first) :]
    [message] = decoder.buffer_updated(len(data) - len(first))
    assert message["item"][5] == b"y" * (3 * BOUNDARY_READ)


def test_buffer_updated_rejects_more_than_handed_out() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ValueError):
        decoder.buffer_updated(len(decoder.get_buffer(-1)) + 1)


# --- FrameDecoder errors -----------------------------------------------------------------------

MALFORMED_PAYLOADS = {
    "invalid msgpack": b"\xc1",
    "truncated msgpack": packed({"kind": "cancel", "ids": [1, 2, 3]})[:-1],
    "trailing bytes": packed({"kind": "shutdown"}) + b"\x00",
    "two objects": packed({"kind": "shutdown"}) * 2,
    "non-map": packed(["kind", "shutdown"]),
    "scalar": packed(5),
    "map without kind": packed({"ids": [1]}),
    "non-str kind": packed({"kind": 3}),
    "bytes kind": packed({"kind": b"shutdown"}),
    "unknown kind": packed({"kind": "reboot"}),
    "missing required field": packed({"kind": "hello", "version": 1, "pid": 3}),
    "ext type": packed({"kind": "cancel", "ids": msgpack.ExtType(5, b"abc")}),
    "empty ext type": b"\x82\xa4kind\xa6cancel\xa3ids\xc7\x00\x05",
    "timestamp ext": packed({"kind": "cancel", "ids": msgpack.Timestamp(1, 2)}),
    "int map key": packed({"kind": "cancel", "ids": [], 1: 2}),
    "invalid utf-8": b"\x82\xa4kind\xa6cancel\xa3ids\xa1\xff",
    "deep nesting": b"\x82\xa4kind\xa6cancel\xa3ids" + b"\x91" * 100_000 + b"\xc0",
}


@pytest.mark.parametrize("payload", list(MALFORMED_PAYLOADS.values()), ids=list(MALFORMED_PAYLOADS))
def test_malformed_payload_raises(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_payload(payload)
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(frame(payload))


def test_msgpack_errors_are_chained() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_payload(b"\xc1")
    assert isinstance(info.value.__cause__, ValueError)


def test_zero_length_raises_from_header() -> None:
    with pytest.raises(ProtocolError, match="zero-length"):
        FrameDecoder().feed(HEADER.pack(0))


@pytest.mark.parametrize("length", [1025, 2**32 - 1])
def test_oversized_length_raises_from_header(length: int) -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    with pytest.raises(ProtocolError, match="exceeds"):
        decoder.feed(HEADER.pack(length))  # no payload follows, and none is waited for


def test_oversized_payload_with_default_limit_raises_at_once() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(HEADER.pack(DEFAULT_MAX_FRAME_SIZE + 1))


def test_decoder_stays_failed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(HEADER.pack(0))
    with pytest.raises(ProtocolError, match="failed earlier"):
        decoder.feed(encode({"kind": "shutdown"}))
    with pytest.raises(ProtocolError):
        decoder.get_buffer(-1)


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 20])
def test_truncated_frame_at_eof(cut: int) -> None:
    data = encode({"kind": "cancel", "ids": list(range(10))})
    decoder = FrameDecoder()
    assert decoder.feed(data[:cut]) == []
    with pytest.raises(ProtocolError, match="truncated frame"):
        decoder.check_eof()


def test_truncated_large_frame_at_eof() -> None:
    data = encode(chunk(1, b"x" * 200_000))
    decoder = FrameDecoder()
    assert decoder.feed(data[:-1]) == []
    with pytest.raises(ProtocolError, match="truncated frame"):
        decoder.check_eof()


@settings(max_examples=500, deadline=None)
@given(garbage=st.binary(max_size=3000))
def test_garbage_decodes_or_raises_protocol_error(garbage: bytes) -> None:
    for decoder_input in (garbage, frame(garbage)):
        decoder = FrameDecoder(max_frame_size=4096)
        try:
            result = decoder.feed(decoder_input)
            decoder.check_eof()
        except ProtocolError:
            continue
        assert all(isinstance(message, dict) and message["kind"] in REQUIRED_FIELDS for message in result)
    with suppress(ProtocolError):
        assert decode_payload(garbage)["kind"] in REQUIRED_FIELDS


plausible_maps = st.dictionaries(
    st.sampled_from(["kind", "ids", "status", "message", "jobs", "items", "pid", "version", "device"]),
    st.sampled_from(sorted(REQUIRED_FIELDS)) | values,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(obj=plausible_maps | values, garble=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
def test_plausible_garbage_decodes_or_raises_protocol_error(obj: Any, garble: list[tuple[int, int]]) -> None:
    payload = bytearray(packed(obj))
    for position, value in garble:
        payload[position % len(payload)] = value
    try:
        message = decode_payload(bytes(payload))
    except ProtocolError:
        return
    assert REQUIRED_FIELDS[message["kind"]] <= message.keys()


# --- SocketChannel -----------------------------------------------------------------------------


def test_socket_channel_roundtrip_with_sending_thread() -> None:
    batch = realistic_messages()
    with socket_pair() as (left, right):
        sender, receiver = SocketChannel(left), SocketChannel(right)

        def send_all() -> None:
            for message in batch:
                sender.send(message)
            sender.close()

        with in_thread(send_all):
            received = [receiver.recv() for _ in batch]
            assert receiver.recv() is None
    assert received == batch


def test_socket_channel_20_mb_body() -> None:
    body = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    message = {"kind": "result", "items": [item(1, body)]}
    with socket_pair() as (left, right):
        sender, receiver = SocketChannel(left), SocketChannel(right)
        with in_thread(lambda: sender.send(message)):
            received = receiver.recv()
    assert received is not None
    assert received["items"][0]["body"] == body


def test_socket_channel_concurrent_senders_keep_frames_whole() -> None:
    threads, per_thread = 4, 50
    with socket_pair() as (left, right):
        sender, receiver = SocketChannel(left), SocketChannel(right)

        def send_many(worker: int) -> None:
            for n in range(per_thread):
                sender.send(chunk(worker * 1000 + n, bytes([worker]) * (n * 997)))

        workers = [threading.Thread(target=send_many, args=(w,), daemon=True) for w in range(threads)]
        for thread in workers:
            thread.start()
        received = [receiver.recv() for _ in range(threads * per_thread)]
        for thread in workers:
            thread.join(TIMEOUT)
    ids = sorted(message["item"][0] for message in received if message is not None)
    assert ids == sorted(w * 1000 + n for w in range(threads) for n in range(per_thread))
    for message in received:
        assert message is not None
        job_id, body = message["item"][0], message["item"][5]
        assert body == bytes([job_id // 1000]) * (job_id % 1000 * 997)


def test_socket_channel_clean_eof() -> None:
    with socket_pair() as (left, right):
        left.close()
        assert SocketChannel(right).recv() is None


@pytest.mark.parametrize("cut", [1, 3, 4, 10])
def test_socket_channel_truncated_frame(cut: int) -> None:
    data = encode({"kind": "cancel", "ids": list(range(10))})
    with socket_pair() as (left, right):
        left.sendall(data[:cut])
        left.close()
        with pytest.raises(ProtocolError, match="truncated frame"):
            SocketChannel(right).recv()


def test_socket_channel_zero_length() -> None:
    with socket_pair() as (left, right):
        left.sendall(HEADER.pack(0))  # the writer stays open: the error must not wait for more
        with pytest.raises(ProtocolError, match="zero-length"):
            SocketChannel(right).recv()


def test_socket_channel_oversized_raises_without_waiting_for_payload() -> None:
    with socket_pair() as (left, right):
        left.sendall(HEADER.pack(2000))  # the writer stays open: waiting would time out instead
        with pytest.raises(ProtocolError, match="exceeds"):
            SocketChannel(right, max_frame_size=1000).recv()


@pytest.mark.parametrize("payload", list(MALFORMED_PAYLOADS.values()), ids=list(MALFORMED_PAYLOADS))
def test_socket_channel_malformed_payload(payload: bytes) -> None:
    with socket_pair() as (left, right):
        left.sendall(frame(payload))
        with pytest.raises(ProtocolError):
            SocketChannel(right).recv()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=3000))
def test_socket_channel_garbage_never_hangs(garbage: bytes) -> None:
    with socket_pair() as (left, right):
        left.sendall(garbage)
        left.close()
        channel = SocketChannel(right, max_frame_size=4096)
        try:
            while (message := channel.recv()) is not None:
                assert message["kind"] in REQUIRED_FIELDS
        except ProtocolError:
            pass


def test_socket_channel_close_wakes_blocked_reader() -> None:
    with socket_pair() as (_left, right):
        channel = SocketChannel(right)
        outcome: list[object] = []

        def read() -> None:
            try:
                outcome.append(channel.recv())
            except OSError as err:
                outcome.append(err)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        thread.join(0.2)
        channel.close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert outcome and (outcome[0] is None or isinstance(outcome[0], OSError))


def test_socket_channel_send_rejects_bad_message_without_writing() -> None:
    with socket_pair() as (left, right):
        with pytest.raises(ProtocolError):
            SocketChannel(left).send({"kind": "nope"})
        right.setblocking(False)
        with pytest.raises(BlockingIOError):
            right.recv(1)


def test_held_frames_leave_in_order_with_the_next_send() -> None:
    with socket_pair() as (left, right):
        sender, receiver = SocketChannel(left), SocketChannel(right)
        sender.send({"kind": "cancel", "ids": [1]}, hold=True)
        sender.send({"kind": "cancel", "ids": [2]}, hold=True)
        assert sender.held_bytes > 0 and sender.held_for() >= 0.0
        assert not receiver.readable()  # nothing written yet
        sender.send({"kind": "cancel", "ids": [3]})
        assert [receiver.recv()["ids"] for _ in range(3)] == [[1], [2], [3]]
        assert sender.held_bytes == 0 and sender.held_for() == 0.0


def test_recv_writes_held_frames_before_it_waits() -> None:
    """A channel holding results must not wait for a peer that is waiting for those results."""
    with socket_pair() as (left, right):
        worker, frontend = SocketChannel(left), SocketChannel(right)
        worker.send({"kind": "cancel", "ids": [7]}, hold=True)
        got: list[dict | None] = []
        with in_thread(lambda: got.append(worker.recv())):
            assert frontend.recv() == {"kind": "cancel", "ids": [7]}
            frontend.send({"kind": "shutdown"})
        assert got == [{"kind": "shutdown"}]


def test_frames_that_arrive_together_are_decoded_together() -> None:
    with socket_pair() as (left, right):
        left.sendall(b"".join(encode({"kind": "cancel", "ids": [n]}) for n in range(5)))
        channel = SocketChannel(right)
        assert channel.recv() == {"kind": "cancel", "ids": [0]}
        assert channel.has_ready  # the other four came with the first read
        assert [channel.recv()["ids"][0] for _ in range(4)] == [1, 2, 3, 4]
        assert not channel.has_ready and not channel.readable()


def test_encode_parts_is_encode_split_at_the_header() -> None:
    for message in realistic_messages():
        header, payload = encode_parts(message)
        assert header + payload == encode(message) and HEADER.unpack(header)[0] == len(payload)


def test_a_large_frame_is_never_held_and_keeps_its_place() -> None:
    big = bytes(range(256)) * (HOLD_LIMIT // 256 + 1)
    with socket_pair() as (left, right):
        sender, receiver = SocketChannel(left), SocketChannel(right)
        sender.send({"kind": "cancel", "ids": [1]}, hold=True)
        with in_thread(lambda: sender.send({"kind": "result", "items": [item(2, big)]}, hold=True)):
            first, second = receiver.recv(), receiver.recv()
        assert first == {"kind": "cancel", "ids": [1]}
        assert second is not None and second["items"][0]["body"] == big
        assert sender.held_bytes == 0


# --- attachments ---------------------------------------------------------------------------------


def _result_with(*bodies: bytes) -> dict[str, Any]:
    items = [
        {"id": index, "status": 200, "reason": "", "headers": {}, "content_type": "", "body": attach(body)}
        for index, body in enumerate(bodies)
    ]
    return {"kind": "result", "items": items}


def test_a_large_body_is_sent_as_the_very_object_in_an_attachment_frame() -> None:
    body = bytes(range(256)) * (ATTACH_MIN // 256)
    parts = encode_parts(_result_with(body, b"small"))
    assert len(parts) == 4 and parts[1] is body  # header, body, header, payload: the body is not copied
    assert HEADER.unpack(parts[0])[0] == ATTACHMENT_FLAG | len(body)
    assert body not in parts[3] and b"small" in parts[3]
    assert encode_parts(_result_with(body[:-1]))[1] != body[:-1]  # below ATTACH_MIN: inside the map


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.sampled_from([10, ATTACH_MIN, ATTACH_MIN + 1, 3 * SMALL_FRAME_SIZE + 7]), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=3, max_value=5 * SMALL_FRAME_SIZE), min_size=1, max_size=12),
)
def test_attachments_round_trip_through_any_split(sizes: list[int], cuts: list[int]) -> None:
    bodies = [bytes([index + 1]) * size for index, size in enumerate(sizes)]
    messages = [_result_with(*bodies), {"kind": "cancel", "ids": [7]}, _result_with(bodies[-1])]
    stream = b"".join(encode(message) for message in messages)
    decoder, received, offset = FrameDecoder(), [], 0
    for cut in itertools.cycle(cuts):
        if offset >= len(stream):
            break
        received += decoder.feed(stream[offset : offset + cut])
        offset += cut
    assert decoder.pending == 0
    assert [[item["body"] for item in m["items"]] for m in (received[0], received[2])] == [bodies, bodies[-1:]]
    assert received[1] == {"kind": "cancel", "ids": [7]}
    attached = [item["body"] for item in received[0]["items"] if type(item["body"]) is bytearray]
    assert len(attached) == sum(size >= ATTACH_MIN for size in sizes)


def _attachment_frame(data: bytes) -> bytes:
    return HEADER.pack(ATTACHMENT_FLAG | len(data)) + data


def _frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


MARK = msgpack.ExtType(0, b"")


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (_attachment_frame(b"x" * 5) + encode({"kind": "cancel", "ids": [1]}), "not claimed"),
        (_frame(msgpack.packb({"kind": "cancel", "ids": [MARK]})), "not sent"),
        (_attachment_frame(b"x") + _frame(msgpack.packb({"kind": "cancel", "ids": [MARK, MARK]})), "not sent"),
        (_attachment_frame(b"x") + _frame(msgpack.packb({"kind": "cancel", "ids": [msgpack.ExtType(1, b"")]})), "ext"),
        (_attachment_frame(b"x") + _frame(msgpack.packb({"kind": "cancel", "ids": [msgpack.ExtType(0, b"a")]})), "ext"),
    ],
)
def test_attachments_must_match_their_marks(stream: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        FrameDecoder().feed(stream)


def test_attachments_are_bounded_by_max_frame_size_before_their_bytes_arrive() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    decoder.feed(_attachment_frame(b"a" * 600))
    with pytest.raises(ProtocolError, match="exceed"):
        decoder.feed(HEADER.pack(ATTACHMENT_FLAG | 600))  # 1200 in all: refused from the header
    with pytest.raises(ProtocolError, match="exceeds"):
        encode({"kind": "cancel", "ids": [Attached(b"a" * 600), Attached(b"b" * 600)]}, max_frame_size=1000)


def test_a_stream_that_ends_after_an_attachment_is_truncated() -> None:
    decoder = FrameDecoder()
    decoder.feed(_attachment_frame(b"y" * (ATTACH_MIN + 5)))
    assert decoder.pending == ATTACH_MIN + 5 + HEADER.size
    with pytest.raises(ProtocolError, match="truncated"):
        decoder.check_eof()


def test_socket_channel_sends_attachments_at_once_and_receives_bytearrays() -> None:
    body = bytes(range(256)) * (2 * HOLD_LIMIT // 256)
    with socket_pair() as (left, right):
        sender, receiver = SocketChannel(left), SocketChannel(right)
        sender.send(_result_with(body), hold=True)  # an attachment is never held
        assert receiver.readable()
        received = receiver.recv()
        assert received is not None
        assert type(received["items"][0]["body"]) is bytearray and received["items"][0]["body"] == body


# --- versions 2 and 3: runtime, job and item arrays, memoryviews --------------------------------------------


def test_load_names_its_runtime() -> None:
    load = next(message for message in realistic_messages() if message["kind"] == "load")
    assert "runtime" in REQUIRED_FIELDS["load"]
    without = {key: value for key, value in load.items() if key != "runtime"}
    with pytest.raises(ProtocolError, match="missing runtime"):
        encode(without)
    with pytest.raises(ProtocolError, match="missing runtime"):
        decode_payload(packed(without))


def test_version_3_jobs_and_items_are_arrays() -> None:
    assert PROTOCOL_VERSION == 3
    assert {"id", "request_id", "headers", "inputs", "method"} == JOB_FIELDS
    assert {"url_path", "tensors", "parameters", "outputs", "infer_id", "from_grpc"} == JOB_OPTIONAL_FIELDS
    assert {"body", "error", "tensors", "parameters"} == ITEM_OPTIONAL_FIELDS
    assert REQUIRED_FIELDS["chunk"] == {"item"}
    infer = next(message for message in realistic_messages() if message["kind"] == "infer")
    [received] = FrameDecoder().feed(encode(infer))
    [wire] = received["jobs"]
    assert type(wire) is list and len(wire) == 6 and wire[3] == ["data", "image/jpeg", b"\xff\xd8\xff\x00binary"]
    job = job_from_wire(wire)
    assert set(job) == JOB_FIELDS | JOB_OPTIONAL_FIELDS - {"from_grpc"}
    assert job["inputs"] == [("data", "image/jpeg", b"\xff\xd8\xff\x00binary")]
    assert job["parameters"] == {"temperature": 0.5} and job["url_path"] == "extra/path"
    result = next(message for message in realistic_messages() if message["kind"] == "result")
    [received] = FrameDecoder().feed(encode(result))
    plain, failed, tensors = received["items"]
    assert plain == [7, 200, "", {}, "text/plain", b"\x00\x01", None]
    assert failed[6] == {"error": "boom"}
    assert set(tensors[6]) == {"tensors", "parameters"} and tensors[6]["parameters"] == {"sequence_end": True}


def test_an_item_keeps_an_empty_tensor_list() -> None:
    """A tensor runtime's answer with no output tensors is not an answer without tensors (a JSON body)."""
    assert item_to_wire({**item(1, b""), "tensors": []})[6] == {"tensors": []}
    assert item_to_wire(item(1, b""))[6] is None


def test_a_large_body_of_a_job_or_item_is_marked_for_an_attachment_frame() -> None:
    body = b"x" * ATTACH_MIN
    wire = job_to_wire(1, "r", [], [("body", "", body), ("small", "", b"y")], "predict", None)
    assert type(wire[3][2]) is Attached and wire[3][2].data is body and wire[3][5] == b"y"
    assert type(item_to_wire(item(1, body))[5]) is Attached
    assert item_to_wire(item(1, body), attaching=False)[5] is body
    [message] = FrameDecoder().feed(encode({"kind": "infer", "jobs": [wire]}))
    assert job_from_wire(message["jobs"][0])["inputs"][0] == ("body", "", bytearray(body))


@pytest.mark.parametrize(
    "wire",
    [
        {"id": 1},
        [1, "r", [], [], "predict"],
        [1, "r", [], [], "predict", None, None],
        ["1", "r", [], [], "predict", None],
        [1, "r", [], ["body", ""], "predict", None],
        [1, "r", [], "body", "predict", None],
        [1, "r", [], [], "predict", {"unknown": 1}],
        [1, "r", [], [], "predict", ["url_path"]],
        [1, "r", [], [], "predict", 0],
        [1, "r", [], [], "predict", ""],
    ],
)
def test_a_malformed_job_array_is_a_protocol_error(wire: object) -> None:
    with pytest.raises(ProtocolError):
        job_from_wire(wire)


@pytest.mark.parametrize(
    "wire",
    [
        {"id": 1, "status": 200},
        [1, 200, "", {}, "", b""],
        ["1", 200, "", {}, "", b"", None],
        (1, 200, "", {}, "", b"", None),
    ],
)
def test_an_item_array_of_another_shape_is_a_protocol_error(wire: object) -> None:
    from workers.protocol import check_item

    with pytest.raises(ProtocolError):
        check_item(wire)


@pytest.mark.parametrize(
    ("wire", "fault"),
    [
        ([1, "200", "", {}, "", b"", None], "status, reason and content type"),
        ([1, 200, None, {}, "", b"", None], "status, reason and content type"),
        ([1, 200, "", {}, 5, b"", None], "status, reason and content type"),
        ([1, 200, "", [], "", b"", None], "headers must be a map, got list"),
        ([1, 200, "", {}, "", "text", None], "body must be bytes, got str"),
        ([1, 200, "", {}, "", b"", ["error"]], "optional fields must be a map, got list"),
        ([1, 200, "", {}, "", None, None], "an answer needs a body or an error"),
        ([1, 200, "", {}, "", None, {"tensors": []}], "an answer needs a body or an error"),
        ([1, 200, "", {}, "", None, {"error": "boom"}], None),
        ([1, 200, "", {}, "", bytearray(b"x"), None], None),
    ],
)
def test_the_values_of_an_item_array_are_checked(wire: list, fault: str | None) -> None:
    from workers.protocol import check_item, item_fault

    found = item_fault(check_item(wire))
    assert found == fault if fault is None else fault in str(found)


@settings(max_examples=60, deadline=None)
@given(
    job_id=st.integers(0, 2**63),
    headers=st.lists(st.binary(max_size=20), max_size=8).map(lambda flat: flat[: len(flat) // 2 * 2]),
    inputs=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8), st.binary(max_size=200)), max_size=4),
    optional=st.none() | st.fixed_dictionaries({}, optional={"url_path": st.text(min_size=1), "infer_id": st.text()}),
)
def test_a_job_survives_the_wire(job_id: int, headers: list, inputs: list, optional: dict | None) -> None:
    wire = job_to_wire(job_id, "rid", headers, inputs, "predict", optional or None)
    [message] = FrameDecoder().feed(encode({"kind": "infer", "jobs": [wire]}))
    job = job_from_wire(message["jobs"][0])
    assert (job["id"], job["request_id"], job["headers"], job["method"]) == (job_id, "rid", headers, "predict")
    assert job["inputs"] == inputs
    assert {key: job[key] for key in job if key in JOB_OPTIONAL_FIELDS} == (optional or {})


def test_attach_takes_flat_memoryviews_and_views_others_as_bytes() -> None:
    body = bytearray(range(256)) * (ATTACH_MIN // 256)
    view = memoryview(body)
    marked = attach(view)
    assert type(marked) is Attached and marked.data is view
    words = memoryview(body).cast("I")
    marked = attach(words)
    assert type(marked) is Attached and marked.data.format == "B" and len(marked.data) == len(body)
    assert type(attach(view[:-1])) is memoryview  # small: inside the map
    assert type(attach(view[::2])) is memoryview  # not contiguous: never an attachment
    parts = encode_parts({"kind": "cancel", "ids": [attach(words)]})
    assert HEADER.unpack(parts[0])[0] == ATTACHMENT_FLAG | len(body)
    [message] = FrameDecoder().feed(b"".join(parts))
    assert message["ids"] == [body] and type(message["ids"][0]) is bytearray


def test_job_headers_are_read_from_a_map_or_from_the_flat_array_the_frontend_sends() -> None:
    raw = [b"Host", b"x", b"X-Name", b"caf\xe9", b"X-Name", b"second"]
    assert dict(header_items(raw)) == {"Host": "x", "X-Name": "second"}  # latin-1, a later header of a name wins
    assert header_items(raw) == [("Host", "x"), ("X-Name", "café"), ("X-Name", "second")]
    assert list(header_items({"Host": "y"})) == [("Host", "y")]
    assert list(header_items(None)) == [] and list(header_items([])) == []
    assert header_items([("Host", "z"), ("A", "b")]) == [("Host", "z"), ("A", "b")]  # an in-process caller's pairs
    # through a real frame: bytes stay bytes
    wire = job_to_wire(1, "r", raw, [], "p", None)
    message = decode_payload(encode({"kind": "infer", "jobs": [wire]})[4:])
    assert dict(header_items(job_from_wire(message["jobs"][0])["headers"])) == {"Host": "x", "X-Name": "second"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=8), st.booleans())
def test_flat_headers_read_as_the_pairs_they_hold(pairs: list, odd: bool) -> None:
    flat = [part for pair in pairs for part in pair] + ([b"dangling"] if odd else [])
    expected = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in pairs]
    assert list(header_items(flat)) == expected
    assert list(header_items(pairs)) == expected
    assert list(header_items([part.decode("latin-1") for part in flat])) == expected  # str, an in-process caller's
