"""The written-out header block of TorchServe's inference answers says byte for byte what the header map says."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from modelserver.dialects import torchserve_http as http
from modelserver.http_request import HttpRequest
from modelserver.http_responses import head_lines

DATE = "Date: Sun, 06 Dec 2026 13:38:15 GMT\r\n"


def _request(version: str = "1.1") -> HttpRequest:
    return HttpRequest("POST", "/predictions/m", version, [], 1024, lambda: None, None, False)


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
