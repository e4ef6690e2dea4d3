"""The HTTP client of ``Model``'s default ``predict`` and ``explain``: a transformer forwarding to its predictor or
explainer (KServe 0.21 uses httpx through its ``InferenceRESTClient``; we use aiohttp's client).

One ``aiohttp.ClientSession`` per event loop is shared by every model of the process (connection pooling, as
KServe's ``InferenceClientFactory`` shares one client); :func:`close_clients` closes the running loop's session.
Connection failures (refused, unreachable, connect timeout) are retried ``retries`` times, the first retry at once
and then after 0.5 s, 1 s, 2 s... (httpx's transport retries, which KServe means to configure, retry the same
failures); a request that reached the server is never repeated. HTTPS verifies certificates against the default CA
store, or the bundle named by ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` as KServe does.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .codec import dumps, loads
from .constants import INFERENCE_CONTENT_LENGTH_HEADER, PredictorProtocol
from .errors import HTTPStatusError, UnsupportedProtocol
from .infer_type import InferRequest, InferResponse

__all__ = ["Reply", "close_clients", "explain", "infer", "post"]

RETRY_BACKOFF = 0.5
"""Seconds before the second retry; each later retry waits twice as long (the first retry is at once)."""

_SESSIONS: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_SSL: dict[str | None, ssl.SSLContext] = {}
_RETRIED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


@dataclass
class Reply:
    """A response read in full."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    url: str
    header_items: list[tuple[str, str]] = field(default_factory=list)


def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    for stale in [other for other in _SESSIONS if other.is_closed()]:
        del _SESSIONS[stale]
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession()
        _SESSIONS[loop] = session
    return session


async def close_clients() -> None:
    """Close the running loop's client session (a later request opens a new one)."""
    session = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


def _ssl_context() -> ssl.SSLContext:
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
    context = _SSL.get(bundle)
    if context is None:
        context = ssl.create_default_context(cafile=bundle)
        _SSL[bundle] = context
    return context


async def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float | None, retries: int = 0) -> Reply:
    """POST ``body`` and read the whole answer; connection failures are retried ``retries`` times."""
    session = _session()
    attempt = 0
    while True:
        try:
            async with session.post(
                url,
                data=body,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=_ssl_context() if url.startswith("https:") else True,
            ) as response:
                content = await response.read()
                return Reply(
                    response.status,
                    response.reason or "",
                    response.headers,
                    content,
                    str(response.url),
                    list(response.headers.items()),
                )
        except _RETRIED:
            if attempt >= retries:
                raise
            await asyncio.sleep(RETRY_BACKOFF * 2 ** (attempt - 1) if attempt else 0)
            attempt += 1


def status_error(reply: Reply) -> HTTPStatusError:
    """KServe's error for a non-2xx answer: ``"{error}, '{status} {reason}' for url '{url}'"``, where ``error`` is
    the ``"error"`` member of a JSON body (KServe reads JSON only when the content type is exactly
    ``application/json``; we also accept parameters such as ``; charset=utf-8``)."""
    error: Any = ""
    if reply.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        try:
            error = loads(reply.body)
        except ValueError:
            error = ""
        if isinstance(error, dict) and "error" in error:
            error = error["error"]
    message = f"{error}, '{reply.status} {reply.reason}' for url '{reply.url}'"
    return HTTPStatusError(message, reply.status, reply.reason, reply.url, reply.body)


def _encode(data: Any) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return dumps(data)


def _protocol(protocol: Any) -> str:
    return (protocol.value if isinstance(protocol, PredictorProtocol) else str(protocol)).lower()


async def infer(
    base_url: str,
    model_name: str,
    data: Any,
    protocol: Any,
    headers: Mapping[str, str],
    timeout: float | None,
    retries: int = 0,
    response_headers: dict[str, str] | None = None,
) -> dict[str, Any] | InferResponse:
    """Run ``data`` on the predictor at ``base_url``.

    v1: POST ``{base}/v1/models/{name}:predict`` with the JSON of ``data``; the answer's JSON is returned. v2: POST
    ``{base}/v2/models/{name}/infer``; an :class:`InferRequest` with binary inputs goes as
    ``application/octet-stream`` with ``inference-header-content-length``, anything else as JSON; the answer is
    parsed into an :class:`InferResponse` (binary when it has that header). Any other protocol raises
    :class:`UnsupportedProtocol`; a non-2xx answer raises :class:`HTTPStatusError`. With ``response_headers``, the
    answer's headers (lower-cased names) are added to it."""
    protocol = _protocol(protocol)
    if protocol == PredictorProtocol.REST_V1.value:
        path = f"/v1/models/{model_name}:predict"
    elif protocol == PredictorProtocol.REST_V2.value:
        path = f"/v2/models/{model_name}/infer"
    else:
        raise UnsupportedProtocol(protocol)
    request_headers = dict(headers)
    if isinstance(data, InferRequest):
        data, json_length = data.to_rest()
        if json_length is not None:
            for name in [name for name in request_headers if name.lower() == "content-type"]:
                del request_headers[name]
            request_headers["content-type"] = "application/octet-stream"
            request_headers[INFERENCE_CONTENT_LENGTH_HEADER] = str(json_length)
    if not any(name.lower() == "content-type" for name in request_headers):
        request_headers["content-type"] = "application/json"
    reply = await post(base_url.rstrip("/") + path, _encode(data), request_headers, timeout, retries)
    if not 200 <= reply.status < 300:
        raise status_error(reply)
    if response_headers is not None:
        merged: dict[str, str] = {}
        for name, value in reply.header_items:
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        response_headers.update(merged)
    if protocol == PredictorProtocol.REST_V2.value:
        json_length = reply.headers.get(INFERENCE_CONTENT_LENGTH_HEADER, len(reply.body))
        return InferResponse.from_bytes(reply.body, int(json_length))
    return loads(reply.body)


async def explain(
    base_url: str,
    model_name: str,
    data: Any,
    headers: Mapping[str, str],
    timeout: float | None,
    retries: int = 0,
) -> Any:
    """POST the JSON of ``data`` to ``{base}/v1/models/{name}:explain`` (explainers speak only v1) and return the
    answer's JSON; a non-2xx answer raises :class:`HTTPStatusError`."""
    request_headers = dict(headers)
    if not any(name.lower() == "content-type" for name in request_headers):
        request_headers["content-type"] = "application/json"
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}:explain"
    reply = await post(url, _encode(data), request_headers, timeout, retries)
    if not 200 <= reply.status < 300:
        raise status_error(reply)
    return loads(reply.body)
