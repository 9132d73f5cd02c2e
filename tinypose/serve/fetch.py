"""Fetching an image URL for the service without letting a request reach inside the network.

Only ``http``/``https``; every address a host name resolves to is checked, and so is each redirect
target (redirects are followed here, one by one, never by the client library). Addresses that are
not globally routable (private, loopback, link-local, carrier-grade NAT, reserved, multicast,
unspecified, and IPv4 addresses mapped into IPv6) are refused unless ``Limits.url_allow`` names the
host, the address or a network holding it. The connection goes to the address that was checked
(aiohttp connects to what the resolver returned), so a second DNS answer cannot swap it. The whole
fetch, redirects included, is bounded by ``url_timeout_s`` and the body by ``max_download_bytes``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .core import Limits, RequestError

__all__ = ["AddressPolicy", "fetch_image"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class AddressPolicy:
    """Which hosts and addresses image URLs may reach (see the module docstring)."""

    def __init__(self, allow: tuple[str, ...] = ()) -> None:
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow:
            text = str(entry).strip()
            try:
                self.networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                self.hosts.add(text.lower().rstrip("."))

    def host_allowed(self, host: str) -> bool:
        """True when the allow-list names this host name."""
        return host.lower().rstrip(".") in self.hosts

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be reached, or None when it may."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.networks):
            return None
        if ip.is_loopback:
            return "a loopback address"
        if ip.is_link_local:
            return "a link-local address"
        if ip.is_private:
            return "a private address"
        if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
            return "not a public address"
        return None


class _CheckedResolver(AbstractResolver):
    """aiohttp resolver that refuses a host when any of its addresses is refused."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        if not self.policy.host_allowed(host):
            for entry in found:
                reason = self.policy.refusal(entry["host"])
                if reason is not None:
                    raise RequestError(400, f"image URL host {host} resolves to {entry['host']}, {reason}: refused")
        return found

    async def close(self) -> None:
        await self.inner.close()


def _check_url(url: str, policy: AddressPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RequestError(400, f"image URL scheme {parts.scheme!r} is not served: use http or https")
    host = parts.hostname
    if not host:
        raise RequestError(400, "image URL has no host")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver checks its addresses
    if not policy.host_allowed(host):
        reason = policy.refusal(host)
        if reason is not None:
            raise RequestError(400, f"image URL address {host} is {reason}: refused")


async def _download(session: aiohttp.ClientSession, url: str, limits: Limits, policy: AddressPolicy) -> bytes:
    for _ in range(limits.max_redirects + 1):
        _check_url(url, policy)
        async with session.get(url, allow_redirects=False) as response:
            if response.status in _REDIRECTS and "Location" in response.headers:
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status != 200:
                raise RequestError(400, f"image URL answered HTTP {response.status} {response.reason or ''}".rstrip())
            length = response.content_length
            if length is not None and length > limits.max_download_bytes:
                raise RequestError(
                    413, f"image URL sends {length:,} bytes, more than the limit of {limits.max_download_bytes:,}"
                )
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > limits.max_download_bytes:
                    raise RequestError(
                        413, f"image URL sends more than the limit of {limits.max_download_bytes:,} bytes"
                    )
                chunks.append(chunk)
            if not size:
                raise RequestError(400, "image URL sent no data")
            return b"".join(chunks)
    raise RequestError(400, f"image URL redirects more than {limits.max_redirects} times")


async def fetch_image(url: str, limits: Limits) -> bytes:
    """The bytes at ``url``, within ``limits``; every failure is a :class:`RequestError` (4xx)."""
    policy = AddressPolicy(limits.url_allow)
    connector = aiohttp.TCPConnector(resolver=_CheckedResolver(policy), use_dns_cache=False, limit=4)
    timeout = aiohttp.ClientTimeout(total=limits.url_timeout_s)
    options: dict[str, Any] = {"cookie_jar": aiohttp.DummyCookieJar(), "trust_env": False, "timeout": timeout}
    try:
        async with aiohttp.ClientSession(connector=connector, **options) as session:
            return await asyncio.wait_for(_download(session, url, limits, policy), limits.url_timeout_s)
    except RequestError:
        raise
    except (asyncio.TimeoutError, TimeoutError):
        raise RequestError(400, f"image URL did not answer within {limits.url_timeout_s:g} s") from None
    except aiohttp.InvalidURL:
        raise RequestError(400, "image URL is not a valid URL") from None
    except (aiohttp.ClientError, OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RequestError(400, f"image URL could not be fetched ({reason})") from None
