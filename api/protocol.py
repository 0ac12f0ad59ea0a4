"""uvicorn's HTTP protocol with a deadline for the request head.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for a request whose headers
never finish: 300 such connections held open for 20 s cost 300 sockets, and a few thousand starve the server. This
protocol closes a connection whose request line and headers have not all arrived ``header_timeout_s`` after its
first byte (or after it was opened). Put a reverse proxy in front for the rest (README "Deployment").
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any


def _base() -> type[asyncio.Protocol]:
    # The implementation uvicorn's "auto" would choose.
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


def protocol_with_header_timeout(header_timeout_s: float) -> type[asyncio.Protocol]:
    base: Any = _base()

    class HeaderTimeoutProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def _waiting_for_head(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._head_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _head_too_slow(self) -> None:
            self._header_timer = None
            if self._waiting_for_head() and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
            elif self._waiting_for_head():
                self._arm()  # the next request has begun (or the first has not finished its head)
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
