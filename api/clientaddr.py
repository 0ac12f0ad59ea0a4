"""The client's address: the TCP peer, or what a configured reverse proxy says in ``X-Forwarded-For``.

uvicorn trusts ``X-Forwarded-For`` from loopback by default, so anyone on the API host (or behind a proxy that
passes the header through) could pick the address the login limiter counts. The API runs uvicorn with
``proxy_headers=False`` and takes the header only from the proxies in ``SMARTWATER_API_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(entries: Iterable[str]) -> list[Network]:
    """Addresses or CIDR networks (``10.0.0.5``, ``172.18.0.0/16``); ValueError names a bad one."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return out


def _trusted(host: str, proxies: list[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in net for net in proxies)


def client_address(conn: HTTPConnection, proxies: list[Network]) -> tuple[str, str]:
    """(client, peer): the peer is who opened the connection; the client is the peer unless the peer is a trusted
    proxy, then the right-most ``X-Forwarded-For`` entry that is not a trusted proxy itself."""
    peer = conn.client.host if conn.client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer, peer
    hops = [h.strip() for h in ",".join(conn.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop)), peer
            except ValueError:
                return peer, peer  # garbage from the client side of the proxy: count the proxy
    return peer, peer
