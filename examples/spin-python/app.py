"""A Spin Python app written against Spin's own Python SDK (spin-sdk 3.4.1 from PyPI), unchanged:
key-value, variables and AI inferencing through `spin_sdk`.

GET /          -> "<greeting>, visit <n>"   (the visit count kept in the default key-value store)
GET /ask?q=... -> the inferencing server's answer for llama2-chat, or "llm error: <error>"
"""

from urllib.parse import parse_qs, urlparse

from spin_sdk import http, key_value, llm, variables
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        url = urlparse(request.uri)
        if url.path == "/ask":
            question = parse_qs(url.query).get("q", [""])[0]
            try:
                answer = llm.infer("llama2-chat", question).text
            except Exception as error:
                answer = f"llm error: {error.args[0] if error.args else error!r}"
            return text(answer)
        with key_value.open_default() as store:
            visits = int((store.get("visits") or b"0").decode()) + 1
            store.set("visits", str(visits).encode())
        return text(f"{variables.get('greeting')}, visit {visits}")


def text(body: str) -> Response:
    return Response(200, {"content-type": "text/plain"}, bytes(body, "utf-8"))
