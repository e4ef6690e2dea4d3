"""modelserver.downloads: the register ``url`` rules, address checks, redirects and the size cap."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from modelserver import download_client, download_guard, download_policy, downloads
from modelserver.download_client import GuardedResolver
from modelserver.downloads import DownloadPolicy, ModelSource, resolve_source
from modelserver.errors import (
    AddressRefused,
    DownloadFailed,
    EmptyUrl,
    ModelFileExists,
    ModelFileNotFound,
    RelativeUrl,
    UrlNotAllowed,
)

DEFAULT = DownloadPolicy.from_properties({})


@pytest.mark.parametrize(
    "url",
    [
        "../kit.mar",
        "http://h/a/../b.mar",
        "http://h/a/%2e%2e/b.mar",
        "http://h/a/%2E%2E/b.mar",
        "http://h/a/%252e%252e/b.mar",
        "http://h/a/.%2e/b.mar",
        "file:///store/%2e./etc/passwd",
    ],
)
def test_traversal_is_found_also_when_encoded(url: str) -> None:
    assert downloads.has_traversal(url)


@pytest.mark.parametrize("url", ["kit.mar", "http://h/models/kit.mar", "http://h/a%20b.mar", "file:///x/y.mar"])
def test_plain_urls_have_no_traversal(url: str) -> None:
    assert not downloads.has_traversal(url)


def test_store_file_name_is_the_last_path_segment() -> None:
    assert downloads.store_file_name("http://h/a/b.mar?sig=1#frag") == "b.mar"
    assert downloads.store_file_name("https://h/a/my%20model.mar") == "my model.mar"


@pytest.mark.parametrize(
    "url", ["http://h/", "http://h", "http://h/a%2Fb.mar", "http://h/.hidden.mar", "http://h/a%00.mar"]
)
def test_store_file_name_refuses_what_is_not_a_plain_name(url: str) -> None:
    with pytest.raises(DownloadFailed):
        downloads.store_file_name(url)


def test_default_allowed_urls_are_torchserves() -> None:
    assert DEFAULT.allows("http://example.com/a.mar")
    assert DEFAULT.allows("HTTPS://example.com/a.mar")
    assert DEFAULT.allows("file:///tmp/a.mar")
    assert not DEFAULT.allows("ftp://example.com/a.mar")
    assert DEFAULT.max_bytes == download_policy.DEFAULT_MAX_DOWNLOAD_SIZE


def test_allowed_urls_and_size_from_properties() -> None:
    policy = DownloadPolicy.from_properties(
        {"allowed_urls": r"https://models\.example\.com/.*,(unclosed", "max_download_size": "1024"}
    )
    assert policy.allows("https://models.example.com/a.mar")
    assert not policy.allows("https://evil.example.com/a.mar")
    assert not policy.allows("(unclosed"), "an invalid regex matches nothing"
    assert policy.max_bytes == 1024


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("169.254.169.254", True),
        ("169.254.0.1", True),
        ("fe80::1", True),
        ("::ffff:169.254.169.254", True),
        ("64:ff9b::a9fe:a9fe", True),
        ("2002:a9fe:a9fe::1", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("0.0.0.0", True),
        ("0.1.2.3", True),
        ("::", True),
        ("224.0.0.1", True),
        ("ff02::1", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("192.168.1.10", False),
        ("8.8.8.8", False),
        ("2001:db8::1", False),
    ],
)
def test_forbidden_addresses(address: str, forbidden: bool) -> None:
    assert download_guard.forbidden_address(ipaddress.ip_address(address)) is forbidden


# -- resolve_source --------------------------------------------------------------------------------


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_local_names_and_directories(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "kit").mkdir(parents=True)
    (store / "kit.mar").write_bytes(b"zip")
    outside = tmp_path / "outside_dir"
    outside.mkdir()
    assert run(resolve_source("kit.mar", str(store), DEFAULT)) == ModelSource(store / "kit.mar")
    assert run(resolve_source("/somewhere/else/kit.mar", str(store), DEFAULT)) == ModelSource(store / "kit.mar")
    assert run(resolve_source("kit", str(store), DEFAULT)) == ModelSource(store / "kit")
    assert run(resolve_source(str(outside), str(store), DEFAULT)) == ModelSource(outside)
    with pytest.raises(ModelFileNotFound, match="Model not found at: nothing.mar"):
        run(resolve_source("nothing.mar", str(store), DEFAULT))


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", EmptyUrl),
        (None, EmptyUrl),
        ("../kit.mar", RelativeUrl),
        ("ftp://h/kit.mar", ModelFileNotFound),  # not a URL to TorchServe: a (missing) name in the store
        ("fil://h/kit.mar", UrlNotAllowed),
    ],
)
def test_refusals_before_any_request(tmp_path: Path, url: str | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        run(resolve_source(url, str(tmp_path), DEFAULT))


def test_an_existing_store_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "kit.mar").write_bytes(b"old")
    with pytest.raises(ModelFileExists, match="Model file already exists kit.mar"):
        run(resolve_source("http://127.0.0.1:9/kit.mar", str(tmp_path), DEFAULT))
    assert (tmp_path / "kit.mar").read_bytes() == b"old"


def test_file_url_is_copied_with_the_cap(tmp_path: Path) -> None:
    source = tmp_path / "src" / "kit.mar"
    source.parent.mkdir()
    source.write_bytes(b"x" * 100)
    store = tmp_path / "store"
    store.mkdir()
    found = run(resolve_source(source.as_uri(), str(store), DEFAULT))
    assert found == ModelSource(store / "kit.mar", store / "kit.mar")
    assert (store / "kit.mar").read_bytes() == b"x" * 100
    (store / "kit.mar").unlink()
    small = DownloadPolicy(DEFAULT.allowed, max_bytes=10)
    with pytest.raises(DownloadFailed) as failed:
        run(resolve_source(source.as_uri(), str(store), small))
    assert failed.value.message == f"Failed to download archive from: {source.as_uri()}"  # TorchServe's exact text
    assert "download limit" in failed.value.reason
    assert list(store.iterdir()) == []


# -- addresses and redirects -----------------------------------------------------------------------


class FakeResolver:
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0} for a in self.answers
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("answers", "refused"),
    [(["127.0.0.1"], False), (["10.0.0.5", "169.254.169.254"], True), (["fe80::1%eth0"], True), (["::1"], False)],
)
def test_a_name_is_refused_if_any_address_is_forbidden(answers: list[str], refused: bool) -> None:
    async def check() -> None:
        resolver = GuardedResolver()
        resolver._inner = FakeResolver(answers)  # type: ignore[assignment]
        await resolver.check_url("http://models.internal/kit.mar")

    if refused:
        with pytest.raises(AddressRefused):
            run(check())
    else:
        run(check())


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/x.mar", "http://[::ffff:169.254.169.254]/x.mar", "http://[fe80::1%25eth0]/x.mar"]
)
def test_literal_addresses_are_checked_without_resolving(url: str) -> None:
    async def check() -> None:
        await GuardedResolver().check_url(url)

    with pytest.raises(AddressRefused):
        run(check())


def test_next_hop_rules() -> None:
    policy = DownloadPolicy.from_properties({"allowed_urls": r"http://good\.example/.*"})
    assert download_client.next_hop("http://good.example/a/x.mar", "/b/y.mar", policy) == "http://good.example/b/y.mar"
    assert download_client.next_hop("http://good.example/a/x.mar", "y.mar", policy) == "http://good.example/a/y.mar"
    with pytest.raises(UrlNotAllowed, match="http://evil.example/y.mar"):
        download_client.next_hop("http://good.example/x.mar", "http://evil.example/y.mar", policy)
    with pytest.raises(UrlNotAllowed):
        download_client.next_hop("http://good.example/x.mar", "file:///etc/passwd", DEFAULT)
    with pytest.raises(RelativeUrl):
        download_client.next_hop("http://good.example/a/x.mar", "../../y.mar", policy)
    with pytest.raises(DownloadFailed):
        download_client.next_hop("http://good.example/x.mar", None, policy)


# -- real downloads from a local server ------------------------------------------------------------

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def with_server(routes: dict[str, Route], body: Callable[[str], Awaitable[Any]]) -> Any:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        return await body(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(64):
        await response.write(b"y" * 1024)
    await response.write_eof()
    return response


async def sized(request: web.Request) -> web.Response:
    return web.Response(body=b"z" * 5000)


async def loop(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/loop.mar"})


def test_download_and_size_cap(tmp_path: Path) -> None:
    policy = DownloadPolicy(DEFAULT.allowed, max_bytes=4096)
    routes = {"/sized.mar": sized, "/streamed.mar": streamed, "/loop.mar": loop}

    async def body(base: str) -> None:
        found = await resolve_source(f"{base}/sized.mar", str(tmp_path), DEFAULT)
        assert found.downloaded == tmp_path / "sized.mar"
        assert found.path.read_bytes() == b"z" * 5000
        found.path.unlink()
        for name in ("sized.mar", "streamed.mar"):
            with pytest.raises(DownloadFailed) as failed:
                await resolve_source(f"{base}/{name}", str(tmp_path), policy)
            assert "download limit" in failed.value.reason
        with pytest.raises(DownloadFailed) as failed:
            await resolve_source(f"{base}/loop.mar", str(tmp_path), DEFAULT)
        assert "more than 5 redirects" in failed.value.reason

    run(with_server(routes, body))
    assert list(tmp_path.iterdir()) == [], "a failed download leaves nothing in the store"
