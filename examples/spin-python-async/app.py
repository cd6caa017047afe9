"""A Spin 4 Python app on Spin's own Python SDK (spin-sdk 5.0.0 from PyPI), unchanged: an async
WASI 0.3 handler using key-value and variables (`spin:key-value@3.0.0`, `spin:variables@3.0.0`) and
AI inferencing.

GET /          -> "<greeting>, visit <n>"   (the visit count kept in the default key-value store)
GET /ask?q=... -> the inferencing server's answer for llama2-chat, or "llm error: <error>"
"""

from urllib.parse import parse_qs, urlparse

from spin_sdk import http, key_value, llm, variables
from spin_sdk.http import Request, Response


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        url = urlparse(request.uri)
        if url.path == "/ask":
            question = parse_qs(url.query).get("q", [""])[0]
            try:
                answer = llm.infer("llama2-chat", question).text
            except Exception as error:
                answer = f"llm error: {error.args[0] if error.args else error!r}"
            return text(answer)
        store = await key_value.open_default()
        visits = int((await store.get("visits") or b"0").decode()) + 1
        await store.set("visits", str(visits).encode())
        return text(f"{await variables.get('greeting')}, visit {visits}")


def text(body: str) -> Response:
    return Response(200, {"content-type": "text/plain"}, bytes(body, "utf-8"))
