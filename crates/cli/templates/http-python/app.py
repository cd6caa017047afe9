"""An HTTP component: a greeting from a variable, a visit counter and a small key-value API in
the `default` store, and an outbound HTTP call."""

from urllib.parse import parse_qs, urlsplit

from wit_world.imports import key_value, variables
from wasi_http import IncomingHandler as Handler, Request, Response, send


def text(status: int, body) -> Response:
    body = body.encode() if isinstance(body, str) else body
    return Response(status, {"content-type": "text/plain; charset=utf-8"}, body)


class IncomingHandler(Handler):
    def handle_request(self, request: Request) -> Response:
        url = urlsplit(request.uri)
        if request.method == "GET" and url.path == "/":
            return home()
        if url.path.startswith("/kv/"):
            return kv(request, url.path[len("/kv/"):])
        if request.method == "GET" and url.path == "/fetch":
            return fetch(parse_qs(url.query).get("url", [None])[0])
        return text(404, "not found\n")


def home() -> Response:
    """The greeting (variable `greeting`) and how many times this page was seen."""
    greeting = variables.get("greeting")
    with key_value.Store.open("default") as store:
        visits = int(store.get("visits") or b"0") + 1
        store.set("visits", str(visits).encode())
    return text(200, f"{greeting} from {{project-name}}! Visit number {visits}.\n")


def kv(request: Request, key: str) -> Response:
    """GET, PUT and DELETE one key of the `default` store."""
    if not key:
        return text(400, "the key is the rest of the path: /kv/KEY\n")
    with key_value.Store.open("default") as store:
        if request.method == "GET":
            value = store.get(key)
            return text(200, value) if value is not None else text(404, "no such key\n")
        if request.method == "PUT":
            store.set(key, request.body or b"")
            return text(200, "stored\n")
        if request.method == "DELETE":
            store.delete(key)
            return text(200, "deleted\n")
    return text(405, "use GET, PUT or DELETE\n")


def fetch(url) -> Response:
    """Fetches `?url=…` and answers with its status and body."""
    if not url:
        return text(400, "add ?url=…\n")
    response = send(Request("GET", url))
    return text(200, f"{response.status} ".encode() + (response.body or b""))
