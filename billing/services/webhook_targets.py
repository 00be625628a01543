"""Where outbound webhooks may go, and how they get there (issue 13: SSRF).

A webhook target is a public HTTPS host: no credentials in the URL, no other scheme, and
every address its name resolves to is a global unicast address (not loopback, private,
link-local such as the 169.254.169.254 metadata service, CGNAT, multicast, reserved,
unspecified, nor an IPv6 form embedding one of those). The URL is checked when it is
registered and again before every send; at send time the name is resolved once, every
address is checked, and the connection goes to the checked address (TLS still verifies
the certificate for the name, and the Host header carries the name), so a name that
answers differently on a second lookup (DNS rebinding) cannot steer the request inside.

TARIF_WEBHOOK_ALLOW_LOOPBACK (development and tests only; production forces it off) lets
a target resolve to loopback addresses, and only then may it use plain HTTP.

This module is a leaf: it raises `UnsafeWebhookTarget` (a ValueError); the webhook
services turn it into their domain error.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext as _
from requests.adapters import HTTPAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


class UnsafeWebhookTarget(ValueError):
    pass


def loopback_allowed() -> bool:
    return bool(getattr(settings, "TARIF_WEBHOOK_ALLOW_LOOPBACK", False))


def is_public_address(address: IPAddress) -> bool:
    """True only for a global unicast address; IPv6 forms embedding an IPv4 address are judged by it."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public_address(address.sixtofour)
        if address.teredo is not None or address in _LOCAL_NAT64:
            return False
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    elif address in _CGNAT:
        return False
    unsafe = [
        address.is_private,
        address.is_loopback,
        address.is_link_local,
        address.is_multicast,
        address.is_reserved,
        address.is_unspecified,
    ]
    if isinstance(address, ipaddress.IPv6Address):
        unsafe.append(address.is_site_local)
    return address.is_global and not any(unsafe)


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (one lookup); raises OSError when it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]  # empty when a registration-time lookup failed

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.scheme == "https" else 80
        return host if self.port == default_port else f"{host}:{self.port}"


def webhook_target_check(*, url: str, require_resolution: bool) -> WebhookTarget:
    """The target of `url` once every rule holds, else UnsafeWebhookTarget with the reason.

    At registration (`require_resolution=False`) a name that does not resolve yet is
    accepted (the send-time check is the one that counts, and DNS may not be live yet);
    at send time it is refused like any other unsafe target.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise UnsafeWebhookTarget(_("The webhook URL is not valid.")) from error
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeWebhookTarget(_("Webhook URLs must use HTTPS."))
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeWebhookTarget(_("Webhook URLs may not contain a user name or password."))
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeWebhookTarget(_("The webhook URL has no host."))
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host.split("%", 1)[0])]
    except ValueError:
        try:
            addresses = resolve_host(host, port)
        except (OSError, UnicodeError) as error:
            if require_resolution:
                raise UnsafeWebhookTarget(_("The webhook host %(host)s does not resolve.") % {"host": host}) from error
            addresses = []
    allow_loopback = loopback_allowed()
    for address in addresses:
        if is_public_address(address) or (allow_loopback and _is_loopback(address)):
            continue
        raise UnsafeWebhookTarget(
            _("Webhook targets must be public hosts: %(host)s is (or resolves to) %(address)s, which is not.")
            % {"host": host, "address": address}
        )
    if scheme == "http" and not (allow_loopback and addresses and all(_is_loopback(a) for a in addresses)):
        raise UnsafeWebhookTarget(_("Webhook URLs must use HTTPS."))
    return WebhookTarget(scheme=scheme, host=host, port=port, addresses=tuple(addresses))


class _PinnedAddressAdapter(HTTPAdapter):
    """Connects to one checked address whatever the URL's name resolves to now.

    The URL keeps its name, so the Host header, TLS SNI and certificate verification all
    use the name; only the TCP connection goes to `address`.
    """

    def __init__(self, *, target: WebhookTarget, address: IPAddress) -> None:
        self._target = target
        self._address = address
        super().__init__(max_retries=0)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None) -> Any:
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": self._target.host, "assert_hostname": self._target.host}
        return self.poolmanager.connection_from_host(
            host=str(self._address), port=host_params["port"], scheme=host_params["scheme"], pool_kwargs=pool_kwargs
        )


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status_code: int
    reason: str

    @property
    def status_line(self) -> str:
        return f"{self.status_code} {self.reason}".strip()[:500]


def webhook_post(*, url: str, body: bytes, headers: dict[str, str], timeout: float) -> WebhookResponse:
    """POST `body` to a checked target; only the status line of the answer is read.

    Raises UnsafeWebhookTarget before connecting anywhere unsafe, and requests'
    exceptions for network failures. Redirects are never followed, proxies from the
    environment are not used, and the response body is not downloaded.
    """
    target = webhook_target_check(url=url, require_resolution=True)
    address = target.addresses[0]
    with requests.Session() as session:
        session.trust_env = False  # no HTTP(S)_PROXY / .netrc: the checked address is where we connect
        session.mount(f"{target.scheme}://", _PinnedAddressAdapter(target=target, address=address))
        response = session.post(
            url,
            data=body,
            headers={**headers, "Host": target.host_header},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        try:
            return WebhookResponse(status_code=response.status_code, reason=str(response.reason or ""))
        finally:
            response.close()
