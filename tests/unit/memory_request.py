"""A request held in memory, implementing :class:`modelserver.http_messages.Request`, for tests of the pure parts
(listener dispatch, dialect decoding) that need no socket."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from modelserver.errors import RequestTooLarge


class MemoryRequest:
    def __init__(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        max_body_size: int = 6_553_500,
    ) -> None:
        self.method = method
        self.raw_path = target
        self._headers = CIMultiDictProxy(CIMultiDict(headers or {}))
        self._items = list((headers or {}).items())
        self._body = body
        self.max_body_size = max_body_size
        split = urlsplit(target)
        self._path = unquote(split.path)
        query: MultiDict[str] = MultiDict()
        for pair in split.query.split("&") if split.query else ():
            name, _, value = pair.partition("=")
            query.add(unquote(name), unquote(value))
        self._query = MultiDictProxy(query)

    @property
    def path(self) -> str:
        return self._path

    @property
    def query(self) -> MultiDictProxy[str]:
        return self._query

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._headers

    def header_items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def header_dict(self) -> dict[str, str]:
        return dict(self._items)

    @property
    def content_type(self) -> str:
        value = self._headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else ""

    @property
    def content_length(self) -> int | None:
        return len(self._body)

    async def read_body(self) -> bytes:
        if len(self._body) > self.max_body_size:
            raise RequestTooLarge()
        return self._body

    def body_ready(self) -> bytes | None:
        return self._body if len(self._body) <= self.max_body_size else None
