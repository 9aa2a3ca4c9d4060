"""Which hosts a key may reach over plain HTTP, judged the way the resolver reads them.

Owns: `check_base_url` (the `api_base` / `api_url` rule), `host_ip` (a host as an address,
with `inet_aton`'s legacy IPv4 forms and IPv6-mapped IPv4), `is_exempt_ip` (loopback,
RFC 1918, ULA), `is_local_name` and `insecure_http_host` (the names the workers' loader must
resolve). Pure: no I/O; resolving names is `workers.providers.config`'s job.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

_EXEMPT_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")
)


def host_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `host` denotes as the resolver reads it, or None for a name.

    IPv4 is parsed with `inet_aton` rules, as libc's resolver does: `134744072`,
    `0x08080808`, `010.010.010.010` (octal) and `8.8` (short form) are all addresses.
    IPv6-mapped IPv4 (`::ffff:8.8.8.8`) counts as the IPv4 address it carries.
    """
    host = host.strip("[]").partition("%")[0]
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or not host or not host.isascii() or any(c.isspace() for c in host):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_exempt_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, RFC 1918 and IPv6 ULA (fc00::/7): where plain HTTP may carry a key."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in _EXEMPT_NETWORKS)


def is_local_name(host: str) -> bool:
    """`localhost` and `*.localhost` (RFC 6761: always loopback, never sent to DNS)."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def insecure_http_host(url: str) -> str | None:
    """The host name of a plain-HTTP `url` that must be resolved before a key may go there in
    clear text (None for https, localhost and literal addresses, which are judged here)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or is_local_name(host) or host_ip(host) is not None:
        return None
    return host


def check_base_url(url: str, allow_insecure_http: bool) -> str:
    """Reject plain HTTP to remote hosts: keys would travel in clear text.

    Literal addresses (in any form the resolver accepts) must be loopback, RFC 1918 or ULA;
    names other than `localhost` are checked by resolving them when the config is loaded
    (`workers.providers.config`), since this module does no I/O.
    """
    parts = urlsplit(url)
    try:
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    ip = host_ip(host)
    if (
        parts.scheme == "http"
        and not allow_insecure_http
        and ip is not None
        and not is_exempt_ip(ip)
    ):
        raise ValueError(
            f"{url!r} uses plain HTTP to a remote host ({ip}); use https:// "
            "or set allow_insecure_http: true for this provider"
        )
    return url.rstrip("/")
