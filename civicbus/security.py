"""What every response of every service carries for the browser's sake, and how long a request body may dawdle.

Security headers (安全响应头): a page may run only its own scripts and styles (inline ones only by their SHA-256
hash, so an injected ``<script>`` never runs), no site may frame any response (clickjacking), no response is
sniffed into another type, and no URL leaks through the Referer. The hashes are computed from each HTML response
itself, so a template edit never leaves a page blocked by a stale hash.

A client that announces a Content-Length and sends less would hold its connection (and a worker's memory) for as
long as it likes: uvicorn has no read timeout for a request body. :class:`BodyDeadline` answers 408 and closes it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""For everything that is not a page: nothing may load, nothing may frame it."""

# Swagger UI and ReDoc (/docs, /redoc) come from FastAPI's CDN; ReDoc injects its styles at run time.
DOCS_SOURCES = "https://cdn.jsdelivr.net"
DOCS_PATHS = ("/docs", "/redoc")

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_INLINE_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)


def _hashes(pattern: re.Pattern[str], html: str) -> str:
    digests = {base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() for body in pattern.findall(html)}
    return "".join(f" 'sha256-{digest}'" for digest in sorted(digests))


def page_policy(html: str, docs: bool = False) -> str:
    """The Content-Security-Policy of one HTML page: its own files, and its inline blocks by hash only."""
    scripts = _hashes(_INLINE_SCRIPT, html)
    if docs:
        return (f"default-src 'none'; script-src 'self' {DOCS_SOURCES}{scripts}; "
                f"style-src 'self' {DOCS_SOURCES} https://fonts.googleapis.com 'unsafe-inline'; "
                "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; connect-src 'self'; "
                "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return (f"default-src 'none'; script-src 'self'{scripts}; style-src 'self'{_hashes(_INLINE_STYLE, html)}; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """The HTTP middleware of every service (civicbus.service.service_app)."""
    response = await call_next(request)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if "content-security-policy" in response.headers:
        return response
    if not response.headers.get("content-type", "").startswith("text/html"):
        response.headers["Content-Security-Policy"] = API_POLICY
        return response
    # A page: its body is read to hash its inline blocks (pages are small and rendered whole anyway).
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    policy = page_policy(body.decode("utf-8", "replace"), docs=request.url.path in DOCS_PATHS)
    headers = {**response.headers, "Content-Security-Policy": policy}
    return Response(body, status_code=response.status_code, headers=headers)


class BodyDeadline:
    """ASGI middleware: each part of a request body must arrive within ``seconds``, or the answer is 408 and the
    connection is closed. The application is told the client left and whatever it answers is dropped. Only while
    the body is still coming: a streamed answer's wait for a disconnect is not timed."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = late = started = False

        async def timed_receive() -> Message:
            nonlocal body_done, late
            if late:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                late = True
                return {"type": "http.disconnect"}
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if late and not started:
                return  # the application's answer to a body that never came: the 408 below instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, watched_send)
        except Exception:
            if not late or started:
                raise
        if late and not started:
            await send({"type": "http.response.start", "status": 408, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                (b"content-length", str(len(_LATE_TEXT)).encode()),
                *((name.lower().encode(), value.encode()) for name, value in HEADERS.items()),
                (b"content-security-policy", API_POLICY.encode())]})
            await send({"type": "http.response.body", "body": _LATE_TEXT})


_LATE_TEXT = ("请求体未在规定时间内发送完毕 (the request body did not arrive in time: "
              "shorter than its Content-Length?)").encode()
