"""Which hosts a key may reach over plain HTTP, judged the way the resolver reads them.

Owns: `check_base_url` (the `api_base` / `api_url` rule), `host_ip` (a host as an address,
with `inet_aton`'s legacy IPv4 forms and IPv6-mapped IPv4), `is_exempt_ip` (loopback,
RFC 1918, ULA), `is_local_name` and `insecure_http_host` (the names that need resolving). Pure: resolving
a name is done by a function the caller injects (`RESOLVE_CONTEXT` in the validation
context; the workers' loader passes the system resolver with a short timeout).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
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


RESOLVE_CONTEXT = "resolve"  # validation context key: host name -> addresses (raises OSError)
_FALLBACK_SUFFIXES = (".local", ".internal")


def insecure_http_host(url: str) -> str | None:
    """The host name of a plain-HTTP `url` that must be resolved before a key may go there in
    clear text (None for https, localhost and literal addresses, which are judged as written)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or is_local_name(host) or host_ip(host) is not None:
        return None
    return host


def _name_problem(host: str, resolve: Callable[[str], Sequence[str]] | None) -> str | None:
    """Why plain HTTP to the name `host` is refused, or None.

    With `resolve` (the workers' loader passes one): every address must be exempt. Without
    (the producer, which sends no key; a `LLMProviderManager` update): only single-label,
    `.local` and `.internal` names pass, as names that cannot be public DNS names.
    """
    if resolve is None:
        if "." in host.rstrip(".") and not host.lower().endswith(_FALLBACK_SUFFIXES):
            return "a public host name"
        return None
    try:
        addresses = list(resolve(host))
    except OSError as exc:
        return f"{host!r} cannot be resolved to check that it is private ({exc})"
    public = [a for a in addresses if not _exempt(a)]
    if public or not addresses:
        return f"{host!r} resolves to a public address ({public[0] if public else 'none'})"
    return None


def _exempt(address: str) -> bool:
    try:
        return is_exempt_ip(ipaddress.ip_address(address.partition("%")[0]))
    except ValueError:
        return False


def check_base_url(
    url: str, allow_insecure_http: bool, resolve: Callable[[str], Sequence[str]] | None = None
) -> str:
    """Reject plain HTTP to remote hosts: keys would travel in clear text.

    Literal addresses (in any form the resolver accepts) must be loopback, RFC 1918 or ULA;
    `localhost` and `*.localhost` pass; other names must resolve only to such addresses
    (`resolve` is injected: this module does no I/O itself).
    """
    parts = urlsplit(url)
    try:
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "https" or allow_insecure_http or is_local_name(host):
        return url.rstrip("/")
    ip = host_ip(host)
    if ip is not None:
        problem = None if is_exempt_ip(ip) else f"a public address ({ip})"
    else:
        problem = _name_problem(host, resolve)
    if problem:
        raise ValueError(
            f"{url!r} uses plain HTTP to {problem}; use https:// "
            "or set allow_insecure_http: true for this provider"
        )
    return url.rstrip("/")
