"""Refusing a request before its body is read, and keeping uploads in memory.

:class:`RequestGuard` is a pure ASGI middleware: it asks a policy for each request's
body limit and whether it needs the API key, answers 401/403 from the headers alone
(before a byte of the body is read), answers 413 when ``Content-Length`` is over the
limit, and counts the bytes of the body as they stream in (chunked bodies included),
answering 413 and stopping the app as soon as they pass the limit. A body is thus
never read, let alone stored, beyond its route's limit.

:class:`InMemoryUploadRoute` makes FastAPI parse multipart forms with file parts kept
in memory: Starlette's parser would otherwise spool every part over 1 MiB to a
temporary file on disk. The guard's limit bounds the memory a request can take.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Admission", "RequestGuard", "InMemoryUploadRoute"]


@dataclass(frozen=True)
class Admission:
    """What the guard needs to know of one request: its body ``limit`` in bytes, what the
    limit is for (``what``, named in the 413), and a ``refusal`` (status, detail) to answer
    at once instead, as for a missing or wrong API key."""

    limit: int
    what: str
    refusal: tuple[int, str] | None = None


class _BodyTooLarge(Exception):
    """Raised into the app when the streamed body passes its limit (the 413 is already sent)."""


class RequestGuard:
    """ASGI middleware: API key and body limit per request, decided by ``policy(scope)`` from the headers alone."""

    def __init__(self, app: ASGIApp, policy: Callable[[Scope], Admission]) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        admission = self.policy(scope)
        if admission.refusal is not None:
            await _answer(scope, receive, send, *admission.refusal)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > admission.limit:
            await _answer(
                scope,
                receive,
                send,
                413,
                f"request body of {int(length)} bytes, more than the {admission.limit} byte limit of {admission.what}",
            )
            return
        received, answered, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > admission.limit:
                    if not started and not answered:
                        answered = True
                        await _answer(
                            scope,
                            receive,
                            send,
                            413,
                            f"request body of more than {admission.limit} bytes, the limit of {admission.what}",
                        )
                    raise _BodyTooLarge()
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if answered:  # the 413 is out: whatever the app answers after the failed read is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _BodyTooLarge:
            if not answered:
                raise
        except HTTPException:  # FastAPI turns a failed body read into a 400; the 413 already went out
            if not answered:
                raise


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


class _InMemoryMultiPartParser(MultiPartParser):
    """Starlette's multipart parser with file parts that never roll over to a temporary file."""

    spool_max_size = sys.maxsize  # SpooledTemporaryFile(max_size=...): in memory up to this size
    max_file_size = sys.maxsize  # the same setting's name in Starlette releases before 0.40


class _InMemoryFormRequest(Request):
    """A request whose multipart form is parsed by :class:`_InMemoryMultiPartParser`."""

    async def form(  # type: ignore[override]  # awaited only, never as a context manager
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> FormData:
        if self._form is None and self.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            try:
                parser = _InMemoryMultiPartParser(
                    self.headers, self.stream(), max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
                )
                self._form = await parser.parse()
            except MultiPartException as err:
                raise HTTPException(status_code=400, detail=err.message) from err
        return await super().form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class InMemoryUploadRoute(APIRoute):
    """A FastAPI route whose uploads stay in memory (set as the app's ``router.route_class``)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def in_memory(request: Request) -> Any:
            return await handler(_InMemoryFormRequest(request.scope, request.receive))

        return in_memory
