"""Outbound HTTP over ``wasi:http``: blocking, whole responses.

The host lets a request out only to the hosts under ``[permissions] http`` in
``omniforge.toml`` (narrowed by the tenant's policy); others raise :class:`HttpError` with
``kind == "denied"``. Needs ``world = "skill"``::

    from omniforge_sdk import http

    page = http.get("https://example.com/")
    created = http.post("https://api.example.com/items", json={"name": "x"}).json()
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import SkillError

DEFAULT_MAX_BODY_BYTES = 16 << 20
"""Largest response body read unless ``max_body_bytes`` says otherwise."""


class HttpError(SkillError):
    """A request failed: ``denied`` (not allowed), ``unavailable`` (network, TLS, timeout)
    or ``failed`` (an invalid request, a body over the limit)."""


@dataclass
class Response:
    """A whole HTTP response."""

    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive)."""
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)

    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise HttpError(
                "unavailable", f"the response (status {self.status}) is not JSON: {e}"
            ) from None

    def raise_for_status(self) -> "Response":
        """The response itself for 2xx; otherwise ``not-found`` (404) or ``unavailable``."""
        if 200 <= self.status < 300:
            return self
        if self.status == 404:
            raise SkillError.not_found("the HTTP service answered 404")
        raise SkillError.unavailable(f"the HTTP service answered {self.status}")


def get(url: str, **options: Any) -> Response:
    """Sends a GET request."""
    return request("GET", url, **options)


def post(url: str, **options: Any) -> Response:
    """Sends a POST request."""
    return request("POST", url, **options)


def put(url: str, **options: Any) -> Response:
    """Sends a PUT request."""
    return request("PUT", url, **options)


def delete(url: str, **options: Any) -> Response:
    """Sends a DELETE request."""
    return request("DELETE", url, **options)


def request(
    method: str,
    url: str,
    *,
    headers: Union[Sequence[Tuple[str, str]], Dict[str, str]] = (),
    body: bytes = b"",
    json: Any = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Response:
    """Sends a request and reads the whole response; any status is a response."""
    from componentize_py_types import Err
    from wit_world.imports import outgoing_handler, streams
    from wit_world.imports import wasi_http_types as types

    headers = list(headers.items() if isinstance(headers, dict) else headers)
    if json is not None:
        body = _json.dumps(json, separators=(",", ":")).encode()
        headers.append(("content-type", "application/json"))
    scheme, authority, path = _split(url)
    try:
        fields = types.Fields.from_list([(n, v.encode()) for n, v in headers])
    except Err as e:
        raise HttpError("failed", f"invalid header: {e.value}") from None
    outgoing = types.OutgoingRequest(fields)
    outgoing.set_method(_method(types, method.upper()))
    outgoing.set_scheme(types.Scheme_Https() if scheme == "https" else types.Scheme_Http())
    try:
        outgoing.set_authority(authority)
        outgoing.set_path_with_query(path)
    except Err:
        raise HttpError("failed", f"invalid URL: {url!r}") from None
    outgoing_body = outgoing.body()
    try:
        # Sent first, then the body streams: a large body written before there is a
        # request to read it would fill the host's buffer and wait forever.
        pending = outgoing_handler.handle(outgoing, None)
    except Err as e:
        raise _error(types, e.value) from None
    # A server may answer before reading the whole body and close the connection: then the
    # write fails but the answer is still the response, so a write error counts only when
    # there is no response.
    send_error = None
    try:
        with outgoing_body.write() as stream:
            for start in range(0, len(body), 4096):
                stream.blocking_write_and_flush(bytes(body[start : start + 4096]))
        types.OutgoingBody.finish(outgoing_body, None)
    except Err as e:
        send_error = e.value
    with pending:
        pending.subscribe().block()
        ready = pending.get()
    # Optional[Result[Result[IncomingResponse, ErrorCode], None]]
    if ready is None:
        raise HttpError("unavailable", "no response after waiting for it")
    if isinstance(ready, Err):
        raise HttpError("unavailable", "the response was already taken")
    inner = ready.value
    if isinstance(inner, Err):
        error = _error(types, inner.value)
        if send_error is not None and error.kind != "denied":
            raise HttpError("unavailable", f"sending the body failed: {send_error}")
        raise error
    response = inner.value
    with response:
        status = response.status()
        with response.headers() as fields:
            pairs = [(n, v.decode("latin-1")) for n, v in fields.entries()]
        with response.consume() as incoming:
            with incoming.stream() as stream:
                data = bytearray()
                while True:
                    try:
                        chunk = stream.blocking_read(64 * 1024)
                    except Err as e:
                        if isinstance(e.value, streams.StreamError_Closed):
                            break
                        raise HttpError("unavailable", "reading the body failed") from None
                    if len(data) + len(chunk) > max_body_bytes:
                        raise HttpError(
                            "failed", f"the response body is over {max_body_bytes} bytes"
                        )
                    data.extend(chunk)
    return Response(status=status, headers=pairs, body=bytes(data))


def _split(url: str) -> Tuple[str, str, str]:
    """``(scheme, authority, path-and-query)`` of an absolute http(s) URL; the host checks
    the rest, so a full URL parser is not needed here."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise HttpError("failed", f"only absolute http(s) URLs are supported: {url!r}")
    rest = rest.split("#", 1)[0]
    end = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
    authority, path = rest[:end], rest[end:]
    if not authority or "@" in authority:
        raise HttpError("failed", f"the URL needs a host (and no user info): {url!r}")
    if not path.startswith("/"):
        path = "/" + path
    return scheme, authority, path


def _method(types: Any, method: str) -> Any:
    known = {
        "GET": types.Method_Get,
        "HEAD": types.Method_Head,
        "POST": types.Method_Post,
        "PUT": types.Method_Put,
        "DELETE": types.Method_Delete,
        "OPTIONS": types.Method_Options,
        "PATCH": types.Method_Patch,
    }
    return known[method]() if method in known else types.Method_Other(method)


def _error(types: Any, code: Any) -> HttpError:
    if isinstance(code, types.ErrorCode_HttpRequestDenied):
        return HttpError("denied", "the host refused this destination (not in the allow-list)")
    if isinstance(code, types.ErrorCode_DestinationIpProhibited):
        return HttpError("denied", "the destination address is not allowed")
    return HttpError("unavailable", f"HTTP request failed: {type(code).__name__}")
