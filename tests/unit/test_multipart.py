"""modelserver.multipart: round trips through our own encoder, aiohttp's, requests' and urllib3's, aiohttp's reader as
an oracle, every error path, fuzzing (nothing but MultipartError escapes) and linear work on hostile bodies."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from unittest import mock
from urllib.parse import quote

import pytest
import urllib3
from aiohttp import FormData, MultipartReader, MultipartWriter, StreamReader, payload
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from requests.models import RequestEncodingMixin

from modelserver.multipart import MAX_HEADER_BYTES, MAX_HEADERS, MultipartError, Part, boundary_of, parse_multipart

BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CD = b"Content-Disposition: form-data"


def fields(parts: list[Part]) -> list[tuple[str | None, str | None, str, bytes]]:
    return [(p.name, p.filename, p.content_type, bytes(p.data)) for p in parts]


def form(*parts: bytes, boundary: bytes = b"B") -> bytes:
    """A CRLF body from raw parts (headers, blank line and data already in each)."""
    dash = b"--" + boundary
    return b"".join(dash + b"\r\n" + part + b"\r\n" for part in parts) + dash + b"--\r\n"


# --- strategies ------------------------------------------------------------------------------------------------------

boundaries = st.one_of(
    st.text(st.sampled_from(BCHARS + " "), min_size=1, max_size=70).filter(lambda b: not b.endswith(" ")),
    st.sampled_from(["B", "-", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a" * 70, "=_Part_0", "*****"]),
)
header_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\0"), max_size=12)
names = st.one_of(header_text, st.sampled_from(["a", "file", "x y", 'q"uote', "back\\slash", "é€😀", ""]))


def no_ctl(text: str | None) -> bool:
    """aiohttp refuses control characters in headers (we keep them, but CR and NUL)."""
    return text is None or not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", text)


aiohttp_names = names.filter(no_ctl)
# aiohttp's reader reads name="\\" as "" and drops leading slashes (name="/a" is "a")
oracle_names = aiohttp_names.filter(lambda n: "\\" not in n and not n.startswith("/"))
content_types = st.one_of(
    st.none(),
    st.sampled_from(["image/png", "text/plain; charset=utf-8", "application/octet-stream", "x/é"]),
    header_text.map(lambda t: t.strip(" \t")),
)


def binary_near(dash: bytes) -> st.SearchStrategy[bytes]:
    """Binary data full of line endings, dashes, prefixes of the delimiter and boundary near-misses."""
    pieces = [b"\r\n", b"\n", b"\r", b"-", b"--", b"\r\n--", b"\n--", b"\r\n\r\n", b" ", b"\t", b":"]
    pieces += [dash[:k] for k in range(1, len(dash))]
    pieces += [b"\r\n" + dash + b"x", b"\n" + dash + b"-x", dash + b"_"]
    return st.one_of(st.binary(max_size=64), st.lists(st.sampled_from(pieces) | st.binary(max_size=4)).map(b"".join))


def delimiter_in(chunk: bytes, dash: bytes) -> bool:
    """Whether ``chunk`` holds a line that the parser must take for a delimiter: the encoder cannot send it."""
    return re.search(rb"(?:\A|\n)" + re.escape(dash) + rb"(?:--|[ \t\r\n]|\Z)", chunk) is not None


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def param(draw: st.DrawFn, key: str, value: str) -> str:
    spelling = draw(st.sampled_from([key, key.upper(), key.title()]))
    style = draw(st.sampled_from(["quoted", "token", "ext", "ext+decoy"]))
    if style == "token" and TOKEN.fullmatch(value):
        return f"{spelling}={value}"
    if style.startswith("ext"):
        ext = f"{spelling}*=UTF-8''{quote(value, safe='')}"
        if style == "ext+decoy":  # the plain parameter is ignored, before or after
            decoy = f'{spelling}="decoy"'
            return draw(st.sampled_from([f"{decoy}; {ext}", f"{ext}; {decoy}"]))
        return ext
    return f"{spelling}={quoted(value)}"


@dataclass
class Expected:
    name: str | None
    filename: str | None
    content_type: str
    headers: dict[str, str]
    data: bytes


@st.composite
def forms(draw: st.DrawFn, oracle: bool = False) -> tuple[bytes, str, list[Expected]]:
    """A body encoded by hand, its boundary, and what each part must parse to. ``oracle``: only the plain, strict
    framing that aiohttp's reader understands too."""
    boundary = draw(boundaries.filter(lambda b: b[0] != " ") if oracle else boundaries)  # aiohttp strips it
    dash = b"--" + boundary.encode()
    nl = b"\r\n" if oracle else draw(st.sampled_from([b"\r\n", b"\n"]))
    padding = st.just(b"") if oracle else st.sampled_from([b"", b" ", b"\t", b" \t  "])
    expected: list[Expected] = []
    chunks: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(oracle_names if oracle else names)
        filename = draw(st.none() | (oracle_names if oracle else names))
        content_type = draw(content_types.filter(no_ctl) if oracle else content_types)
        data = draw(binary_near(dash))
        assume(not delimiter_in(data, dash) and (nl == b"\r\n" or not data.endswith(b"\r")))
        if oracle:
            assume(dash not in data)
        headers: list[tuple[str, str]] = []
        has_disposition = oracle or draw(st.integers(0, 9)) > 0
        if has_disposition:
            params = [draw(param("name", name)) if not oracle else f"name={quoted(name)}"]
            if filename is not None:
                params.append(draw(param("filename", filename)) if not oracle else f"filename={quoted(filename)}")
            header = draw(st.sampled_from(["Content-Disposition", "content-disposition", "CONTENT-DISPOSITION"]))
            headers.append((header, "; ".join([draw(st.sampled_from(["form-data", "Form-Data"])), *params])))
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        extras = draw(st.lists(st.from_regex(r"X-[A-Za-z0-9-]{1,8}", fullmatch=True), unique_by=str.lower, max_size=2))
        values = header_text.filter(no_ctl) if oracle else header_text
        headers += [(extra, draw(values).strip(" \t")) for extra in extras]
        headers = draw(st.permutations(headers))
        chunks.append(dash + draw(padding) + nl)
        chunks += [f"{key}: {value}".encode() + nl for key, value in headers]
        chunks += [nl, data, nl]
        expected.append(
            Expected(
                name if has_disposition else None,
                filename if has_disposition else None,
                content_type or "",
                {key.lower(): value for key, value in headers},
                data,
            )
        )
    preamble = b"" if oracle else draw(st.binary(max_size=16) | st.sampled_from([b"", dash + b"x", b"\r\n"]))
    assume(not delimiter_in(preamble, dash))
    if preamble:
        chunks.insert(0, preamble + nl)
    epilogue = b"" if oracle else draw(st.binary(max_size=16) | st.sampled_from([b"", dash, dash + b"--"]))
    end = nl if oracle or epilogue else draw(st.sampled_from([nl, b""]))
    chunks += [dash, b"--", draw(padding), end, epilogue]
    return b"".join(chunks), boundary, expected


def check(parts: list[Part], expected: list[Expected]) -> None:
    assert len(parts) == len(expected)
    for part, want in zip(parts, expected, strict=True):
        assert (part.name, part.filename, part.content_type) == (want.name, want.filename, want.content_type)
        assert {key.lower(): value for key, value in part.headers.items()} == want.headers
        assert bytes(part.data) == want.data


# --- round trips -----------------------------------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(forms())
def test_round_trip_own_encoder(case: tuple[bytes, str, list[Expected]]) -> None:
    body, boundary, expected = case
    parts = parse_multipart(body, boundary)
    check(parts, expected)
    for part in parts:
        assert isinstance(part.data, memoryview) and part.data.obj is body  # zero-copy
    check(parse_multipart(bytearray(body), boundary), expected)
    check(parse_multipart(memoryview(body), boundary), expected)
    check(parse_multipart(memoryview(body).cast("c"), boundary), expected)
    check(parse_multipart(memoryview(b"xx" + body)[2:], boundary), expected)  # not spanning its object: copied


def aiohttp_body(writer: MultipartWriter) -> bytes:
    return asyncio.run(writer.as_bytes())


def aiohttp_quoted_name(name: str) -> str:
    """aiohttp's quote_fields sends an ASCII name as a quoted-string with every non-qtext character escaped: we undo
    ``\\"`` and ``\\\\`` only (like Werkzeug and python-multipart), so an escaped space or tab stays escaped."""
    if all(" " <= char <= "~" or char == "\t" for char in name):
        return name.replace(" ", "\\ ").replace("\t", "\\\t")
    return name  # sent as name*=utf-8''...


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    boundaries,
    st.lists(
        st.tuples(
            aiohttp_names, st.none() | aiohttp_names, st.none() | st.sampled_from(["image/png", "a/b"]), st.binary()
        )
    ),
    st.booleans(),
)
def test_round_trip_aiohttp_writer(boundary: str, items: list, quote_fields: bool) -> None:
    writer = MultipartWriter("form-data", boundary=boundary)
    expected = []
    for name, filename, content_type, data in items:
        assume(b"--" + boundary.encode() not in data)
        part = payload.BytesPayload(data, content_type=content_type) if content_type else payload.BytesPayload(data)
        params = {"name": name} if filename is None else {"name": name, "filename": filename}
        part.set_content_disposition("form-data", quote_fields=quote_fields, **params)
        writer.append_payload(part)
        # aiohttp percent-encodes a quoted filename, which (like browsers' %22) we leave as sent
        sent_filename = quote(filename, "") if quote_fields and filename is not None else filename
        sent_name = aiohttp_quoted_name(name) if quote_fields else name
        expected.append((sent_name, sent_filename, part.headers["Content-Type"], data))
    body = aiohttp_body(writer)
    assert boundary_of(writer.headers["Content-Type"]) == boundary
    assert fields(parse_multipart(body, boundary)) == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(aiohttp_names, st.none(), st.text())
        | st.tuples(aiohttp_names, aiohttp_names, st.binary(max_size=64)),
        min_size=1,
    )
)
def test_round_trip_aiohttp_form_data(items: list) -> None:
    data = FormData(quote_fields=False)
    for name, filename, value in items:  # bytes without a filename would become a file named after the field
        data.add_field(name, value, filename=filename, content_type="x/y")
    writer = data()
    parts = parse_multipart(aiohttp_body(writer), boundary_of(writer.headers["Content-Type"]))
    expected = [
        (name, filename, "x/y", value if filename is not None else value.encode()) for name, filename, value in items
    ]
    assert fields(parts) == expected


def whatwg(value: str) -> str:
    """How requests/urllib3 (and browsers) escape a parameter value: no quoted-pairs, percent-escapes left as sent."""
    return value.translate({10: "%0A", 13: "%0D", 34: "%22"})


no_backslash = names.filter(lambda n: "\\" not in n)  # WHATWG sends "\\" raw; we read it as one backslash


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(no_backslash, st.text(max_size=20)), max_size=3),
    st.lists(st.tuples(no_backslash, no_backslash, st.binary(), st.none() | st.sampled_from(["a/b", "text/x"]))),
)
def test_round_trip_requests(data: list, files: list) -> None:
    assume(files)
    encoded_files = [(name, (filename, value, ct)) for name, filename, value, ct in files]
    body, content_type = RequestEncodingMixin._encode_files(encoded_files, data)
    parts = parse_multipart(body, boundary_of(content_type))
    expected = [(whatwg(name), None, "", value.encode()) for name, value in data]
    expected += [(whatwg(name), whatwg(filename), ct or "", value) for name, filename, value, ct in files]
    assert fields(parts) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(no_backslash, st.none() | no_backslash, st.binary(), st.sampled_from(["a/b", "x/é"]))))
def test_round_trip_urllib3(items: list) -> None:
    encoded = [(name, value if filename is None else (filename, value, ct)) for name, filename, value, ct in items]
    body, content_type = urllib3.encode_multipart_formdata(encoded)
    expected = [
        (whatwg(name), None, "", value) if filename is None else (whatwg(name), whatwg(filename), ct, value)
        for name, filename, value, ct in items
    ]
    assert fields(parse_multipart(body, boundary_of(content_type))) == expected


async def aiohttp_read(body: bytes, boundary: str) -> list[tuple[str | None, bytes]]:
    stream = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    reader = MultipartReader({"Content-Type": f'multipart/form-data; boundary="{boundary}"'}, stream)
    out = []
    while (part := await reader.next()) is not None:
        out.append((part.name, bytes(await part.read(decode=False))))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(forms(oracle=True))
def test_agrees_with_aiohttp_reader(case: tuple[bytes, str, list[Expected]]) -> None:
    body, boundary, _ = case
    ours = [(part.name, bytes(part.data)) for part in parse_multipart(body, boundary)]
    assert ours == asyncio.run(aiohttp_read(body, boundary))


# --- accepted leniencies ----------------------------------------------------------------------------------------------


def test_bare_lf_padding_preamble_epilogue() -> None:
    body = b"preamble\n--B \t\nContent-Disposition: form-data; name=a\n\none\r\n--B\t\r\n" + CD + b'; name="b"\r\n\r\n'
    body += b"two\n--B--  \nepilogue --B\r\n"
    assert fields(parse_multipart(body, "B")) == [("a", None, "", b"one"), ("b", None, "", b"two")]


def test_close_delimiter_without_line_end_and_empty_form() -> None:
    assert fields(parse_multipart(b"--B\r\n" + CD + b"; name=a\r\n\r\nx\r\n--B--", "B")) == [("a", None, "", b"x")]
    assert parse_multipart(b"--B--\r\n", "B") == []
    assert parse_multipart(b"--B--", "B") == []
    assert parse_multipart(b"--B-- \r", "B") == []
    assert parse_multipart(b"junk\r\n--B-- \r\nepilogue", "B") == []


def test_lines_starting_with_a_longer_boundary_are_data() -> None:
    data = b"--Bx\r\n--B-x\r\n--BB--\r\n-B\r\n--"
    body = b"--Bpreamble\r\n--B\r\n" + CD + b"; name=a\r\n\r\n" + data + b"\r\n--B--\r\n"
    assert fields(parse_multipart(body, "B")) == [("a", None, "", data)]


def test_parts_without_name_or_headers() -> None:
    body = form(b"\r\nno headers", b"X-A: 1\r\n\r\nno disposition", CD + b"\r\n\r\nno name")
    assert fields(parse_multipart(body, "B")) == [
        (None, None, "", b"no headers"),
        (None, None, "", b"no disposition"),
        (None, None, "", b"no name"),
    ]
    assert dict(parse_multipart(body, "B")[1].headers) == {"X-A": "1"}


def test_headers_directly_followed_by_the_next_delimiter_mean_empty_data() -> None:
    body = b"--B\r\n" + CD + b"; name=a\r\n\r\n--B\r\n\r\n--B--"
    assert fields(parse_multipart(body, "B")) == [("a", None, "", b""), (None, None, "", b"")]


def test_data_is_kept_as_sent() -> None:
    body = form(b"Content-Transfer-Encoding: base64\r\n" + CD + b"; name=a\r\n\r\naGk=\r")
    assert fields(parse_multipart(body, "B")) == [("a", None, "", b"aGk=\r")]


@pytest.mark.parametrize(
    ("disposition", "name", "filename"),
    [
        (b'form-data; name="a\\"b\\\\c\\d"; filename=""', 'a"b\\c\\d', ""),
        (b'form-data; name="C:\\dir\\a.png"', "C:\\dir\\a.png", None),
        (b'form-data; name="a\\ b"', "a\\ b", None),  # aiohttp's quoted-pair for a space: left as sent
        (b"form-data;name=plain ; filename = f.txt ", "plain", "f.txt"),
        (b"form-data; name=two words; filename=a b.txt", "two words", "a b.txt"),
        (b'form-data; NaMe="x"; FILENAME="y"', "x", "y"),
        (b"form-data; filename*=UTF-8''%e2%82%ac.txt; filename=\"e.txt\"; name=a", "a", "\u20ac.txt"),
        (b"form-data; filename=\"e.txt\"; filename*=utf-8'en'%e2%82%ac.txt; name=a", "a", "\u20ac.txt"),
        (b"form-data; name=a; filename*=iso-8859-1''%e9.txt", "a", "\u00e9.txt"),
        (b"form-data; name*=\"UTF-8''%C3%A9\"", "\u00e9", None),
        (b'form-data; name="a%22b"; flag; ; filename="semi;colon.txt";', "a%22b", "semi;colon.txt"),
        (b'attachment; name="a"', "a", None),
        ('form-data; name="\u00e9"; filename="\u20ac.txt"'.encode(), "\u00e9", "\u20ac.txt"),
        (b'form-data; name="\xe9"; filename="\xff.txt"', "\u00e9", "\u00ff.txt"),  # not UTF-8: latin-1
    ],
)
def test_content_disposition(disposition: bytes, name: str, filename: str | None) -> None:
    [part] = parse_multipart(form(b"Content-Disposition: " + disposition + b"\r\n\r\nx"), "B")
    assert (part.name, part.filename) == (name, filename)


def test_headers_mapping() -> None:
    body = form(CD + b"; name=a\r\ncontent-TYPE:  image/png \t\r\nX-Rep: 1\r\nx-rep: 2\r\nX-Empty:\r\n\r\nx")
    [part] = parse_multipart(body, "B")
    assert part.content_type == "image/png"
    assert part.headers["CONTENT-TYPE"] == part.headers.get("content-type") == "image/png"
    assert list(part.headers) == ["Content-Disposition", "content-TYPE", "X-Rep", "X-Empty"]
    assert part.headers["x-REP"] == "1, 2" and part.headers["x-empty"] == ""
    assert "X-REP" in part.headers and 1 not in part.headers and len(part.headers) == 4
    assert "Headers(" in repr(part.headers)


def test_header_limits_are_inclusive() -> None:
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS - 1))
    assert len(parse_multipart(form(CD + b"\r\n" + lines + b"\r\nx"), "B")[0].headers) == MAX_HEADERS
    filler = b"X: " + b"v" * (MAX_HEADER_BYTES - len(CD) - 2 - 5 - 2) + b"\r\n"
    section = CD + b"\r\n" + filler + b"\r\n"
    assert len(section) == MAX_HEADER_BYTES
    assert parse_multipart(form(section + b"x"), "B")[0].headers["x"].startswith("vvv")
    assert len(parse_multipart(form(*[b"\r\n"] * 5), "B", max_parts=5)) == 5


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        ("multipart/form-data; boundary=abc", "abc"),
        ('multipart/form-data; BOUNDARY="a b:c;d"', "a b:c;d"),
        ("multipart/form-data;boundary=----WebKitFormBoundaryA1; charset=utf-8", "----WebKitFormBoundaryA1"),
        ("multipart/form-data; charset=utf-8; boundary = x ", "x"),
        ("multipart/form-data; boundary=" + "z" * 70, "z" * 70),
        ("multipart/form-data; boundary=*****", "*****"),
        ("multipart/form-data; boundary=a b", "a b"),
    ],
)
def test_boundary_of(header: str, boundary: str) -> None:
    assert boundary_of(header) == boundary


# --- refusals ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("multipart/form-data", "no boundary parameter"),
        ("multipart/form-data; charset=utf-8", "no boundary parameter"),
        ("multipart/form-data; boundary=", "invalid multipart boundary ''"),
        ('multipart/form-data; boundary=""', "invalid multipart boundary ''"),
        ("multipart/form-data; boundary=" + "z" * 71, "invalid multipart boundary 'z{71}'"),
        ('multipart/form-data; boundary="ab "', "invalid multipart boundary 'ab '"),
        ("multipart/form-data; boundary=\u00e9", "invalid multipart boundary"),
        ("multipart/form-data; boundary=a\tb", "invalid multipart boundary"),
        ("multipart/form-data; boundary=a; boundary=b", "repeated parameter 'boundary'"),
        ('multipart/form-data; boundary="abc', "invalid Content-Type header: malformed parameter at character 19"),
    ],
)
def test_boundary_of_refuses(header: str, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        boundary_of(header)


@pytest.mark.parametrize("boundary", ["", "a" * 71, "a\r\nb", "tail ", "\u00e9"])
def test_parse_refuses_invalid_boundaries(boundary: str) -> None:
    with pytest.raises(MultipartError, match="invalid multipart boundary"):
        parse_multipart(b"--B--", boundary)


OK_HEAD = CD + b"; name=a\r\n"
REFUSALS = [
    (b"", "no multipart delimiter '--B' in the body"),
    (b"just some text\r\n--Bx\r\n", "no multipart delimiter '--B' in the body"),
    (b"-- B\r\n--b--\r\n", "no multipart delimiter"),
    (b"--B", r"the first delimiter at byte 0: body truncated after it"),
    (b"--B\r", r"the first delimiter at byte 0: body truncated after it"),
    (b"--B\rx", r"the first delimiter at byte 0: only spaces/tabs and a line ending may follow it"),
    (b"x\r\n--B --\r\n", r"the first delimiter at byte 3: only spaces/tabs and a line ending may follow it"),
    (b"--B--x\r\n", r"the first delimiter at byte 0: only spaces/tabs"),
    (b"--B\r\n", r"part 0: header section not ended by a blank line: body truncated"),
    (b"--B\r\n" + OK_HEAD, r"part 0: header section not ended by a blank line: body truncated"),
    (b"--B\r\n--B--\r\n", r"part 0: no blank line between the delimiter and the next one at byte 5"),
    (b"--B\r\n--B\r\n\r\nx\r\n--B--", r"part 0: no blank line between the delimiter and the next one at byte 5"),
    (b"--B\r\nhello\r\n--B--\r\n", r"part 0: malformed header line b'hello' at byte 5 \(no blank line after the"),
    (b"--B\r\n" + OK_HEAD + b"data\r\n--B--\r\n", r"part 0: malformed header line b'data' at byte 45"),
    (b"--B\r\nA : b\r\n\r\nx\r\n--B--", r"part 0: malformed header line b'A : b' at byte 5 \(invalid header name\)"),
    (b"--B\r\n: b\r\n\r\nx\r\n--B--", r"malformed header line b': b' at byte 5 \(invalid header name\)"),
    (b"--B\r\n" + OK_HEAD + b" folded\r\n\r\nx\r\n--B--", r"part 0: obsolete header line folding at byte 45"),
    (b"--B\r\nA: b\rc\r\n\r\nx\r\n--B--", r"part 0: CR or NUL in header line at byte 5"),
    (b"--B\r\nA: b\0\r\n\r\nx\r\n--B--", r"part 0: CR or NUL in header line at byte 5"),
    (b"--B\r\n" + OK_HEAD + b"\r\nx", r"part 0: no delimiter after its data \(from byte 47\): body truncated"),
    (b"--B\r\n" + OK_HEAD + b"\r\nx\r\n--Bx--\r\n", r"part 0: no delimiter after its data"),
    (b"--B\r\n" + OK_HEAD + b"\r\nx\r\n--B", r"the delimiter after part 0 at byte 50: body truncated after it"),
    (b"--B\r\n" + OK_HEAD + b"\r\nx\r\n--B \r\n", r"part 1: header section not ended by a blank line: body truncated"),
    (b"--B\r\n" + OK_HEAD + b"\r\nx\r\n--B x\r\n", r"the delimiter after part 0 at byte 50: only spaces/tabs and a"),
    (b"--B\r\n" + OK_HEAD + b"\r\nx\r\n--B--junk", r"the delimiter after part 0 at byte 50: only spaces/tabs and a"),
    (b"--B\r\n" + OK_HEAD + b"\r\nx\r\n--B\rx", r"the delimiter after part 0 at byte 50: only spaces/tabs and a"),
    (form(OK_HEAD + OK_HEAD + b"\r\nx"), r"part 0: repeated Content-Disposition header"),
    (form(b"Content-Type: a\r\ncontent-type: a\r\n\r\nx"), r"part 0: repeated content-type header"),
    (form(b"\r\nx", CD + b'; name="a"; NAME="b"\r\n\r\nx'), r"part 1: invalid Content-Disposition header: repeated"),
    (form(CD + b'; name="a\r\n\r\nx'), r"part 0: invalid Content-Disposition header: malformed parameter at char"),
    (form(CD + b'; name="a"b\r\n\r\nx'), r"part 0: invalid Content-Disposition header: malformed parameter"),
    (form(CD + b"; filename*=%e2.txt\r\n\r\nx"), r"malformed filename\* value '%e2.txt': expected charset'language"),
    (form(CD + b"; filename*=koi8-r''%e2.txt\r\n\r\nx"), r"unsupported charset 'koi8-r' in filename\*"),
    (form(CD + b"; filename*=nope''%e2.txt\r\n\r\nx"), r"unsupported charset 'nope' in filename\*"),
    (form(CD + b"; filename*=utf-8''%ff.txt\r\n\r\nx"), r"filename\* value is not valid utf-8"),
    (form(CD + b"; name*=us-ascii''%c3%a9\r\n\r\nx"), r"name\* value is not valid us-ascii"),
]


@pytest.mark.parametrize(("body", "message"), REFUSALS)
def test_refusals(body: bytes, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        parse_multipart(body, "B")


def test_header_limits() -> None:
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS))
    with pytest.raises(MultipartError, match=f"part 1: more than {MAX_HEADERS} headers"):
        parse_multipart(form(b"\r\n", CD + b"\r\n" + lines + b"\r\nx"), "B")
    filler = b"X: " + b"v" * (MAX_HEADER_BYTES - len(CD) - 2 - 5 - 2 + 1) + b"\r\n"
    with pytest.raises(MultipartError, match=f"part 0: header section larger than {MAX_HEADER_BYTES} bytes"):
        parse_multipart(form(CD + b"\r\n" + filler + b"\r\nx"), "B")
    with pytest.raises(MultipartError, match=f"part 0: header section larger than {MAX_HEADER_BYTES} bytes"):
        parse_multipart(form(b"X: " + b"v" * 10 * MAX_HEADER_BYTES + b"\r\n\r\nx"), "B")


def test_max_parts() -> None:
    with pytest.raises(MultipartError, match="more than 5 parts"):
        parse_multipart(form(*[b"\r\n"] * 6), "B", max_parts=5)
    with pytest.raises(MultipartError, match="more than 1000 parts"):
        parse_multipart(form(*[b"\r\n"] * 1001), "B")
    with pytest.raises(MultipartError, match="more than 0 parts"):
        parse_multipart(form(b"\r\n"), "B", max_parts=0)
    assert parse_multipart(b"--B--", "B", max_parts=0) == []


def test_error_is_a_value_error() -> None:
    assert issubclass(MultipartError, ValueError)


# --- fuzzing ----------------------------------------------------------------------------------------------------------

SYNTAX = [b"--B", b"--B--", b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b"=", b'"', b"\\", b"*", b"'", b"%ff"]
SYNTAX += [b"Content-Disposition: ", b"form-data", b"name", b"filename*=utf-8''", b"Content-Type: ", b"\xc3\xa9"]


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(SYNTAX) | st.binary(max_size=6)).map(b"".join))
@example(b"--B\r\n\r\n--B--")
@example(b"--B\r\n--B--\r\n")
def test_fuzz_syntax_soup(body: bytes) -> None:
    try:
        parts = parse_multipart(body, "B")
    except MultipartError:
        return
    assert all(isinstance(part, Part) for part in parts)


@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(forms(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 2), st.binary(max_size=3)), max_size=4))
def test_fuzz_mutated_forms(case: tuple[bytes, str, list[Expected]], edits: list) -> None:
    body, boundary, _ = case
    mutated = bytearray(body)
    for position, kind, chunk in edits:
        at = position % (len(mutated) + 1)
        if kind == 0:
            mutated[at:at] = chunk
        elif kind == 1:
            del mutated[at : at + len(chunk) + 1]
        else:
            mutated[at : at + len(chunk)] = chunk
    with contextlib.suppress(MultipartError):
        parse_multipart(bytes(mutated), boundary)


@given(st.binary(), st.text())
def test_fuzz_random_bytes_and_boundaries(body: bytes, boundary: str) -> None:
    with contextlib.suppress(MultipartError):
        parse_multipart(body, boundary)


@given(st.text())
def test_fuzz_boundary_of(header: str) -> None:
    try:
        boundary = boundary_of(header)
    except MultipartError:
        return
    assert 1 <= len(boundary) <= 70


# --- linear work ------------------------------------------------------------------------------------------------------


class CountingBytes(bytes):
    """bytes that count how many bytes ``find`` looks at, to check the parser never searches the same bytes twice."""

    def find(self, sub, start=0, end=None):  # type: ignore[override]
        found = super().find(sub, start, end)
        stop = len(self) if end is None else min(end, len(self))
        self.scanned = getattr(self, "scanned", 0) + (found + len(sub) if found >= 0 else stop) - start
        self.calls = getattr(self, "calls", 0) + 1
        return found


def hostile_bodies(size: int, boundary: bytes) -> dict[str, bytes]:
    dash = b"--" + boundary
    head = dash + b"\r\n" + CD + b'; name="f"\r\n\r\n'
    fill = {
        "crlf-dashes": b"\r\n--",
        "boundary-prefixes": b"\r\n" + dash[:-1],
        "longer-boundaries": b"\r\n" + dash + b"x",
        "lf-longer-boundaries": b"\n" + dash + b"-x",
    }
    bodies = {key: head + piece * (size // len(piece)) + b"\r\n" + dash + b"--\r\n" for key, piece in fill.items()}
    bodies["truncated"] = head + (b"\r\n" + dash + b"x") * (size // (len(dash) + 3))
    bodies["many-parts"] = (dash + b"\r\n\r\n\r\n") * 999 + dash + b"--"
    bodies["preamble"] = (b"\n" + dash + b"x") * (size // (len(dash) + 2)) + b"\n" + dash + b"--"
    return bodies


@pytest.mark.parametrize("boundary", [b"B", b"----WebKitFormBoundary7MA4YWxkTrZu0gW"])
def test_every_byte_is_searched_once(boundary: bytes) -> None:
    for key, raw in hostile_bodies(1 << 20, boundary).items():
        body = CountingBytes(raw)
        try:
            parse_multipart(body, boundary.decode())
        except MultipartError:
            assert key == "truncated"
        assert body.scanned <= len(body), key
        assert body.calls <= len(body) // (len(boundary) + 3) + 2 * 1000, key


def test_ten_megabytes_of_near_misses() -> None:
    for key, body in hostile_bodies(10 << 20, b"----WebKitFormBoundary7MA4YWxkTrZu0gW").items():
        if key != "truncated":
            assert len(parse_multipart(body, "----WebKitFormBoundary7MA4YWxkTrZu0gW")) == (key != "preamble") * (
                999 if key == "many-parts" else 1
            )
