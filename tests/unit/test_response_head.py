"""The written-out header block of TorchServe's inference answers says byte for byte what the header map says."""

from __future__ import annotations

import uuid

from hypothesis import example, given
from hypothesis import strategies as st

from modelserver.dialects import torchserve_http as http
from modelserver.http_messages import HeaderBlock, Response
from modelserver.http_request import HttpRequest
from modelserver.http_responses import LARGE_BODY, head_lines, write_whole

DATE = "Date: Sun, 06 Dec 2026 13:38:15 GMT\r\n"


def _request(version: str = "1.1", method: str = "POST") -> HttpRequest:
    return HttpRequest(method, "/predictions/m", version, [], 1024, lambda: None, None, False)


class _Wire:
    """Collects what a response writes (a stand-in for the socket's transport)."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += bytes(data)

    def writelines(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.write(piece)


def _head(headers: object, closing: bool, version: str) -> tuple[str, bool]:
    lines, has_type = head_lines(_request(version), 200, None, headers, closing, DATE)  # type: ignore[arg-type]
    return "".join(lines), has_type


@given(
    content_type=st.text(max_size=40),
    cors=st.dictionaries(st.sampled_from(sorted(http.CORS_KEYS)), st.text(min_size=1, max_size=20), max_size=3),
    closing=st.booleans(),
    version=st.sampled_from(["1.0", "1.1"]),
)
def test_the_block_writes_what_the_map_writes(
    content_type: str, cors: dict[str, str], closing: bool, version: str
) -> None:
    try:
        http.configure_cors(cors)
        request_id = http.new_request_id()
        mapping = http.response_headers(request_id)
        if content_type:
            mapping["Content-Type"] = content_type
        assert _head(http.header_block(request_id, content_type), closing, version) == _head(mapping, closing, version)
    finally:
        http.configure_cors({})


def test_request_ids_are_distinct_version_4_uuids() -> None:
    ids = [http.new_request_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:100]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    # the last group is not a plain count: consecutive ids do not differ by one
    assert sum(int(b[-12:], 16) - int(a[-12:], 16) == 1 for a, b in zip(ids, ids[1:], strict=False)) < 5


@given(
    status=st.sampled_from([200, 201, 204, 304, 400, 404, 500, 503, 299, 599]),
    reason=st.none() | st.text(max_size=12),
    content_type=st.text(max_size=20),
    body_size=st.sampled_from([0, 1, 100, LARGE_BODY - 1, LARGE_BODY, LARGE_BODY + 7]),
    closing=st.booleans(),
    version=st.sampled_from(["1.0", "1.1"]),
    method=st.sampled_from(["POST", "PUT", "HEAD"]),
)
def test_a_whole_answer_with_the_block_is_the_same_bytes(
    status: int, reason: str | None, content_type: str, body_size: int, closing: bool, version: str, method: str
) -> None:
    request_id = http.new_request_id()
    body = bytes(range(256)) * (body_size // 256) + b"x" * (body_size % 256)
    mapping = http.response_headers(request_id)
    if content_type:
        mapping["Content-Type"] = content_type
    written = []
    for headers in (http.header_block(request_id, content_type), mapping):
        wire = _Wire()
        write_whole(wire, _request(version, method), Response(status, headers, body, reason), closing, DATE)  # type: ignore[arg-type]
        written.append(wire.data)
    assert written[0] == written[1]


_NAMES = st.sampled_from(
    ["Content-Type", "content-type", "CONTENT-TYPE", "X-Model", "x-model", "Pragma", "x-request-id", "Expires"]
    + ["Content-Length", "Connection", "Date", "Transfer-Encoding", "X-Trace", "Cache-Control"]
)
_VALUES = st.text(max_size=12) | st.integers(0, 99)


@example(handler_headers={"content-type": "image/png"}, content_type="image/png", status=200, closing=False)
@example(handler_headers={"content-type": "a"}, content_type="text/plain\r\nX: y", status=200, closing=False)
@example(handler_headers={"content-type": 7}, content_type="application/json", status=200, closing=False)
@given(
    handler_headers=st.dictionaries(_NAMES, _VALUES, max_size=5),
    content_type=st.sampled_from(["", "application/json", "text/plain\r\nX: y"]),
    status=st.sampled_from([200, 404, 503]),
    closing=st.booleans(),
)
def test_handler_headers_in_the_block_are_written_as_the_map_writes_them(
    handler_headers: dict[str, object], content_type: str, status: int, closing: bool
) -> None:
    from modelserver.dialects.torchserve_inference import _header_block, _headers
    from modelserver.types import InferenceResult

    result = InferenceResult(status, "", handler_headers, content_type, b"{}")
    request_id = http.new_request_id()
    block = _header_block(request_id, result)
    clash = any(
        type(value) is not str or name.lower() in ("pragma", "x-request-id", "expires", "cache-control")
        for name, value in handler_headers.items()
    )
    assert isinstance(block, HeaderBlock) is (not clash or not handler_headers)
    written = []
    for headers in (block, _headers(request_id, result)):
        wire = _Wire()
        write_whole(wire, _request(), Response(status, headers, b"{}"), closing, DATE)  # type: ignore[arg-type]
        written.append(wire.data)
    assert written[0] == written[1]
