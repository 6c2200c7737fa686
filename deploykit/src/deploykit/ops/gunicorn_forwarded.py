"""Forwarding headers reach the app only from a trusted proxy (FORWARDED_ALLOW_IPS, gunicorn's
`forwarded_allow_ips`).

gunicorn applies that list to `wsgi.url_scheme` alone: it still passes an untrusted peer's
`X-Forwarded-For` and `X-Forwarded-Proto` into the WSGI environment, where Django's SECURE_PROXY_SSL_HEADER
and the rate limits' client address (deploykit/ops/throttle.py, DRF's NUM_PROXIES) read them raw. So a
peer that reaches gunicorn without the proxy (another pod, a host on the network) could claim HTTPS or
any client address. This pre_request hook drops those headers from such a peer before the environment is
built: the app then sees the peer itself, over plain HTTP. With `*` every peer is trusted (unchanged).
"""

from __future__ import annotations

import functools
import ipaddress

# Every header a proxy uses to describe the original request (RFC 7239 `Forwarded` and the X-Forwarded-*
# family: For, Proto, Host, Port, Prefix, Ssl, Protocol). gunicorn gives names in upper case.
FORWARDING_PREFIX = "X-FORWARDED-"
FORWARDING_NAMES = frozenset({"FORWARDED"})


def peer_is_trusted(peer_addr, allowed: list[str]) -> bool:
    """gunicorn's own rule: a UNIX socket peer (not a (host, port) tuple) is trusted; else its address
    must be in one of the addresses/networks listed, or the list holds `*`."""
    if not isinstance(peer_addr, tuple) or "*" in allowed:
        return True
    try:
        address = ipaddress.ip_address(peer_addr[0])
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(allowed)))


@functools.lru_cache(maxsize=4)
def _networks(allowed: tuple[str, ...]) -> list:
    return [ipaddress.ip_network(entry) for entry in allowed]


def is_forwarding_header(name: str) -> bool:
    name = name.upper()
    return name.startswith(FORWARDING_PREFIX) or name in FORWARDING_NAMES


def pre_request(worker, req) -> None:
    """gunicorn hook (runs before the WSGI environment is made from `req.headers`)."""
    if peer_is_trusted(req.peer_addr, worker.cfg.forwarded_allow_ips):
        return
    dropped = [name for name, _ in req.headers if is_forwarding_header(name)]
    if dropped:
        req.headers = [(name, value) for name, value in req.headers if not is_forwarding_header(name)]
        worker.log.debug("dropped %s from untrusted peer %s (FORWARDED_ALLOW_IPS)", ", ".join(dropped), req.peer_addr[0])
