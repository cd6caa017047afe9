"""Plain Request/Response values over wasi:http@0.2 (synchronous), for app.py.

Subclass `IncomingHandler` and define `handle_request`; call `send` for outbound HTTP.
"""

import sys
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Dict, Optional
from urllib.parse import urlsplit

from componentize_py_types import Ok, Err
from wit_world import exports
from wit_world.imports import outgoing_handler, types as t
from wit_world.imports.streams import StreamError_Closed


@dataclass
class Request:
    method: str
    uri: str  # incoming: the path and query; outgoing: a URL, or a path for the app itself
    headers: Dict[str, str] = field(default_factory=dict)
    body: Optional[bytes] = None


@dataclass
class Response:
    status: int
    headers: Dict[str, str] = field(default_factory=dict)
    body: Optional[bytes] = None


_METHODS = {"GET": t.Method_Get, "HEAD": t.Method_Head, "POST": t.Method_Post,
            "PUT": t.Method_Put, "DELETE": t.Method_Delete, "CONNECT": t.Method_Connect,
            "OPTIONS": t.Method_Options, "TRACE": t.Method_Trace, "PATCH": t.Method_Patch}
_NAMES = {cls: name for name, cls in _METHODS.items()}


def _method_name(method: t.Method) -> str:
    return method.value if isinstance(method, t.Method_Other) else _NAMES[type(method)]


def _fields(headers: Dict[str, str]) -> t.Fields:
    return t.Fields.from_list([(k, v.encode()) for k, v in headers.items()])


def _read(body: t.IncomingBody) -> bytes:
    stream = body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err as e:
            if isinstance(e.value, StreamError_Closed):
                break
            raise
    stream.__exit__(None, None, None)  # a stream must go before its body
    t.IncomingBody.finish(body)
    return b"".join(chunks)


def _write(body: t.OutgoingBody, data: bytes) -> None:
    stream = body.write()
    for offset in range(0, len(data), 4096):  # at most 4096 bytes a call
        stream.blocking_write_and_flush(data[offset:offset + 4096])
    stream.__exit__(None, None, None)
    t.OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        raise NotImplementedError

    def handle(self, request: t.IncomingRequest, response_out: t.ResponseOutparam) -> None:
        try:
            headers = {k: v.decode("latin-1") for k, v in request.headers().entries()}
            response = self.handle_request(Request(_method_name(request.method()),
                request.path_with_query() or "/", headers, _read(request.consume())))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            response = Response(500, {"content-type": "text/plain"}, f"{e!r}\n".encode())
        outgoing = t.OutgoingResponse(_fields(response.headers))
        outgoing.set_status_code(response.status)
        body = outgoing.body()
        t.ResponseOutparam.set(response_out, Ok(outgoing))
        _write(body, response.body or b"")


def _prepare_snapshot() -> None:
    """Runs while componentize-py takes the snapshot every instance starts from.

    The bindings attach a `weakref.finalize` to every resource, and `weakref.finalize` registers
    its exit hook the first time it is used: without this, the first resource of every request did
    that again in its fresh instance. Measured with bench/templates.sh, a request costs about 12%
    less CPU with the hook registered here, more than the registration itself (a few µs) explains:
    the snapshot's heap is laid out differently too (README, "The hello templates")."""

    class Probe:
        pass

    probe = Probe()
    weakref.finalize(probe, int)
    del probe  # the finalizer runs at once and leaves the registry empty


_prepare_snapshot()


def send(request: Request) -> Response:
    """Sends a request and waits for the whole response. `http://self/path` (or `/path`) is
    the app itself; other hosts must be in the component's allowed_outbound_hosts."""
    url = urlsplit(request.uri)
    outgoing = t.OutgoingRequest(_fields(request.headers))
    method = request.method.upper()
    outgoing.set_method(_METHODS[method]() if method in _METHODS else t.Method_Other(method))
    if url.scheme:
        outgoing.set_scheme({"http": t.Scheme_Http(), "https": t.Scheme_Https()}.get(
            url.scheme, t.Scheme_Other(url.scheme)))
    if url.netloc:
        outgoing.set_authority(url.netloc)
    outgoing.set_path_with_query((url.path or "/") + (f"?{url.query}" if url.query else ""))
    body = outgoing.body()
    future = outgoing_handler.handle(outgoing, None)
    _write(body, request.body or b"")
    while (result := future.get()) is None:
        future.subscribe().block()
    if isinstance(result, Err) or isinstance(result.value, Err):
        raise RuntimeError(f"outbound HTTP to {request.uri} failed: {result.value}")
    response = result.value.value
    headers = {k: v.decode("latin-1") for k, v in response.headers().entries()}
    return Response(response.status(), headers, _read(response.consume()))
