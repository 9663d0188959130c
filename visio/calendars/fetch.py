"""Fetching a staff member's calendar over HTTP, without server-side request forgery.

Every address a request may reach is checked: the registered URL's, each redirect's
(followed here, hop by hop, at most ``MAX_REDIRECTS``), and the addresses the resolver
answers at connection time (``GuardedResolver``), so a name that changes its answer
between the check and the connection is still refused. Metadata and link-local addresses
are refused always; loopback and private ones unless ``allow_private`` (tests).
Credentials go only to the registered URL's origin, never to a redirect elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
RESOLVE_SECONDS = 5
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10, sock_read=20)
USER_AGENT = "visio-calendar/1 (+busy time import)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services, refused even when private addresses are allowed.
METADATA = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"),
            ipaddress.ip_network("fd00:ec2::254/128"),
            ipaddress.ip_network("100.100.100.200/32"))


class FetchRefused(Exception):
    """A fetch that did not give a calendar; ``code`` is stable and shown to the owner."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# Always refused: "this network" (Linux reaches the host itself through 0.0.0.0/8).
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
# Deprecated site-local IPv6 (RFC 3879): never a public host, judged as private.
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
# IPv6 forms that lead to an IPv4 address held in their last 32 bits.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 §2.5.5.1, deprecated
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
# RFC 8215: a local NAT64 prefix, its length the network's choice.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses a packet to ``ip`` may end at, for the forms that embed one."""
    value = int(ip)
    last32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and value > 1):  # :: and ::1 are themselves
        return (last32,)
    if ip in LOCAL_NAT64:
        # The /48 layout (RFC 6052 §2.2: bits 48-63, then 72-87 past the "u" octet) or
        # the /96 one: both must be allowed, as the network's choice is unknown here.
        high, low = (value >> 64) & 0xFFFF, (value >> 40) & 0xFFFF
        return (ipaddress.IPv4Address(high << 16 | low), last32)
    if ip.sixtofour is not None:  # 2002::/16, RFC 3056
        return (ip.sixtofour,)
    if ip.teredo is not None:  # 2001::/32, RFC 4380: the server, and the inverted client
        return ip.teredo
    return ()


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether a calendar may be fetched from ``address`` (an IP literal).

    An IPv6 address embedding an IPv4 one (mapped, compatible, NAT64, 6to4, Teredo) is
    judged by what it embeds: ``2002:7f00:1::`` reaches 127.0.0.1 through a 6to4 relay.
    """
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded(ip)
        if embedded:
            return all(address_allowed(str(inner), allow_private=allow_private)
                       for inner in embedded)
        if ip in SITE_LOCAL:
            return allow_private
    if any(ip in network for network in METADATA):
        return False
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in THIS_NETWORK:
        return False
    if ip.is_loopback or ip.is_private:
        return allow_private
    return ip.is_global and not ip.is_reserved


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing a name when any of its addresses is not allowed."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results or any(not address_allowed(r["host"], allow_private=self._allow_private)
                              for r in results):
            raise FetchRefused("address_refused")
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose scheme, credentials or host addresses are not allowed."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as err:  # "http://x]" and other unparsable addresses
        raise FetchRefused("bad_url") from err
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise FetchRefused("bad_url")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("credentials_in_url")
    literal = _literal(host)
    if literal is not None:
        if not address_allowed(literal, allow_private=allow_private):
            raise FetchRefused("address_refused")
        return
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as err:
        raise FetchRefused("bad_url") from err
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, TimeoutError) as err:
        raise FetchRefused("unresolvable") from err
    if not infos or any(not address_allowed(str(info[4][0]), allow_private=allow_private)
                        for info in infos):
        raise FetchRefused("address_refused")


def client_session(*, allow_private: bool) -> aiohttp.ClientSession:
    """The HTTP client of calendar fetches (its owner closes it)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=allow_private),
                                     limit=10, ttl_dns_cache=None, use_dns_cache=False)
    # trust_env=False: an environment proxy would reach addresses we never checked.
    return aiohttp.ClientSession(connector=connector, timeout=TIMEOUT, trust_env=False,
                                 headers={"User-Agent": USER_AGENT})


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetch's answer: the body, or None when the server said 304 Not Modified."""

    body: bytes | None
    etag: str | None
    last_modified: str | None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


async def fetch(session: aiohttp.ClientSession, url: str, *, allow_private: bool,
                authorization: str | None = None, etag: str | None = None,
                last_modified: str | None = None, max_bytes: int = MAX_BYTES) -> Fetched:
    """GET a calendar: conditional, redirects checked hop by hop, at most ``max_bytes``."""
    origin = _origin(url)
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        await check_url(current, allow_private=allow_private)
        headers = {"Accept": "text/calendar, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        if authorization and _origin(current) == origin:
            headers["Authorization"] = authorization
        try:
            async with session.get(current, headers=headers, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchRefused(f"http_{response.status}")
                    try:
                        current = str(response.url.join(URL(location)))
                    except ValueError as err:
                        raise FetchRefused("bad_url") from err
                    continue
                if response.status == 304:
                    return Fetched(None, etag, last_modified)
                if response.status != 200:
                    raise FetchRefused(f"http_{response.status}")
                if (response.content_length or 0) > max_bytes:
                    raise FetchRefused("too_large")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchRefused("too_large")
                return Fetched(bytes(body), response.headers.get("ETag"),
                               response.headers.get("Last-Modified"))
        except FetchRefused:
            raise
        except TimeoutError as err:
            raise FetchRefused("timeout") from err
        except aiohttp.ClientError as err:
            # The resolver's refusal arrives wrapped in a connection error.
            if isinstance(err.__cause__, FetchRefused) or "address_refused" in str(err):
                raise FetchRefused("address_refused") from err
            raise FetchRefused("unreachable") from err
    raise FetchRefused("too_many_redirects")
