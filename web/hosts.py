"""DNS-rebinding defence: which `Host` (and `Origin`) a state-changing request may carry.

A page on `evil.example` whose name is made to resolve to the node's address is, for the
browser, same-origin with itself: it can POST to the node and read the answers, and with
auth off nothing else stops it. What gives it away is the name: the browser sends
`Host: evil.example`. So every state-changing request (POST/PUT/PATCH/DELETE, and the
WebSocket upgrade) must name the node by one of its own names — `localhost`, the
machine's host name (and `<hostname>.local`), the names in `web.allowed_hosts` or
`--allowed-host` — or by an IP address (a literal address cannot be rebound, and covers
LAN, Docker and VPN addresses alike). When an `Origin` is sent, it must be the same
host and port as the Host, or one of those names (an IP-literal *Origin* is not enough:
that would be another site's page). `*` in the allowed list turns the check off.

Built once per worker (`HostCheck.from_system`, which reads the host name); `refusal` is
called on the loop thread for each request.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Iterable
from urllib.parse import urlsplit

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _hostname(value: str) -> str:
    """`Example.COM:8080`, `[::1]:80`, `host.` -> `example.com`, `::1`, `host`.

    Parsed here, without int() on the port (`httputil.split_host_and_port` raises on a
    port of 4,301 digits): the value is whatever a client sent."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        return name if sep and (not rest or rest[:1] == ":") else ""
    if value.count(":") == 1:  # name:port (more colons: a bare IPv6 address)
        value = value.partition(":")[0]
    return value.rstrip(".")


def _origin_netloc(origin: str) -> str:
    """`http://Host:8080/` -> `host:8080`; "" for `null` or anything unparsable."""
    try:
        return urlsplit(origin).netloc.lower() if origin != "null" else ""
    except ValueError:  # e.g. "http://[zz"
        return ""


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])  # fe80::1%eth0
    except ValueError:
        return False
    return True


class HostCheck:
    """The names this worker answers to for state-changing requests."""

    def __init__(self, names: Iterable[str] = ()):
        cleaned = {_hostname(n) for n in names if n and n.strip()}
        self.any = "*" in cleaned
        self.names = frozenset(cleaned - {"*"}) | set(LOCAL_NAMES)

    @classmethod
    def from_system(cls, extra: Iterable[str] = ()) -> "HostCheck":
        """Own names (host name, `<host>.local`) plus `extra` (config, command line)."""
        host = socket.gethostname()
        own = [host, host.split(".")[0], host.split(".")[0] + ".local"]
        return cls([*own, *extra])

    def name_allowed(self, name: str) -> bool:
        return self.any or name in self.names or name.endswith(".localhost")

    def refusal(self, host: str, origin: str | None) -> str | None:
        """Why a request with this Host / Origin header is refused; None when allowed."""
        if self.any:
            return None
        name = _hostname(host or "")
        if not name:
            return "the request has no Host header"
        if not (_is_ip(name) or self.name_allowed(name)):
            return (f"Host {name!r} is not a name of this node (DNS rebinding?); "
                    "add it to web.allowed_hosts in config.json if it is one")
        if origin is not None:
            netloc = _origin_netloc(origin)
            if netloc != host.strip().lower() and not self.name_allowed(_hostname(netloc)):
                return (f"Origin {origin!r} is another site; add its name to "
                        "web.allowed_hosts in config.json if it is this node")
        return None
