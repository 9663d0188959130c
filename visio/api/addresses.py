"""The client's address, read through trusted reverse proxies only.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only when
the TCP peer is a proxy we trust, and only as far as the chain stays inside trusted
proxies: the header is walked from the right (the hop nearest to us), skipping trusted
proxies; the first address that is not one is the client. A hop a trusted proxy wrote
that is no address (``unknown``, ``_hidden``) makes the client unknown: it is never
taken to be the proxy itself, which may be allowed more (metrics, readiness).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import hdrs, web

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

UNKNOWN = "unknown"


def client_address(request: web.Request, trusted: Sequence[Network]) -> str:
    """The address of the client, as text (``unknown`` when the peer has none)."""
    peer = _parse(request.remote or "")
    if peer is None:
        return UNKNOWN
    if not _is_trusted(peer, trusted):
        return str(peer)
    hops = [hop for value in request.headers.getall(hdrs.X_FORWARDED_FOR, ())
            for hop in value.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            # The proxy hides or lost the client: nobody we may recognise.
            return UNKNOWN
        client = address
        if not _is_trusted(address, trusted):
            break
    return str(client)


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def _parse(text: str) -> Address | None:
    """An IP address, also from ``[v6]:port`` or ``v4:port``; IPv4-mapped IPv6 as IPv4."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    # A zone (fe80::1%eth0) names our interface, not the client; the column holds 64 chars.
    text = text.partition("%")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
