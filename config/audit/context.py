"""The current request's id, shared with logging and the audit log through a context variable."""

from __future__ import annotations

import ipaddress
import re
import uuid
from contextvars import ContextVar
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

request_id_var: ContextVar[str] = ContextVar("tarif_request_id", default="-")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id(incoming: str | None = None) -> str:
    """Keep a well-formed id from the proxy (so logs join up across hops), else make one."""
    if incoming and _VALID_REQUEST_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


@lru_cache(maxsize=8)
def _trusted_networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies if proxy.strip())


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, the one django-axes, the audit log and /metrics all use.

    REMOTE_ADDR, unless it is one of our reverse proxies (TARIF_TRUSTED_PROXIES, addresses or
    networks): then X-Forwarded-For is read from the right, skipping our own proxies, and
    the first address that is not one of them is the client. Hops further left were
    written by the client itself and are never believed.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    networks = _trusted_networks(tuple(getattr(settings, "TARIF_TRUSTED_PROXIES", ())))
    if remote is None or not networks:
        return remote
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if not _is_trusted(address, networks):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            hop_address = ipaddress.ip_address(hop)
        except ValueError:
            break  # not an address: believe nothing written before it
        address = hop_address
        if not _is_trusted(address, networks):
            break
    return str(address)
