"""Filters for the fleet's private network (issue #20 item 4), stdlib only (no netaddr).

`private_address_choice(facts, private_address, private_network, allow_public)` picks the address a
host's services bind and the other hosts connect to, and says why when there is none:
  1. `private_address` when the inventory sets it (it must be one of the host's addresses);
  2. else the host's IPv4 address inside `private_network` (a CIDR) when that is set;
  3. else 127.0.0.1 when the whole stack is on this one host (`single_host`: nothing connects from afar);
  4. else the address of the default route's interface.
The result must be in `private_network` when that is set, and in a private range (RFC 1918 or the
shared range 100.64.0.0/10) unless `allow_public` is true: on a single-NIC VPS the default route's
address is the public one, and a database bound there is open to the internet.
Returns {"address": "...", "problem": ""} or {"address": "", "problem": "<what is wrong, what to set>"}.
"""
from __future__ import annotations

import ipaddress

PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))


def _host_ipv4(facts: dict) -> list[str]:
    addresses = list(facts.get("all_ipv4_addresses") or [])
    default = (facts.get("default_ipv4") or {}).get("address")
    if default and default not in addresses:
        addresses.insert(0, default)
    return addresses


def is_private_ipv4(address: str) -> bool:
    try:
        ip = ipaddress.IPv4Address(str(address))
    except ValueError:
        return False
    return any(ip in network for network in PRIVATE_RANGES)


def private_address_choice(facts: dict, private_address: str = "", private_network: str = "",
                           allow_public: bool = False, single_host: bool = False) -> dict:
    facts = facts or {}
    name = facts.get("hostname") or facts.get("nodename") or "this host"
    addresses = _host_ipv4(facts)
    network = None
    if private_network:
        try:
            network = ipaddress.IPv4Network(str(private_network), strict=False)
        except ValueError as error:
            return {"address": "", "problem": f"private_network {private_network!r} is not an IPv4 CIDR ({error})."}
        if not allow_public and not any(network.subnet_of(r) for r in PRIVATE_RANGES):
            return {"address": "", "problem": (
                f"private_network {network} is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10); "
                "set private_network_allow_public: true only if that network really is private to the fleet.")}
    if private_address:
        chosen, source = str(private_address), "private_address"
        try:
            ipaddress.IPv4Address(chosen)
        except ValueError:
            return {"address": "", "problem": f"private_address {chosen!r} on {name} is not an IPv4 address."}
        if chosen.startswith("127."):
            return {"address": chosen, "problem": ""}  # a one-host stack: loopback only, stated
        if addresses and chosen not in addresses:
            return {"address": "", "problem": (
                f"private_address {chosen} is not an address of {name} (it has {', '.join(addresses)}).")}
    elif network is not None:
        inside = [a for a in addresses if ipaddress.IPv4Address(a) in network]
        if not inside:
            return {"address": "", "problem": (
                f"{name} has no IPv4 address in private_network {network} (it has {', '.join(addresses) or 'none'}); "
                "attach it to the private network or set its private_address.")}
        chosen, source = inside[0], "private_network"
    elif single_host:
        return {"address": "127.0.0.1", "problem": ""}
    else:
        chosen = (facts.get("default_ipv4") or {}).get("address", "")
        source = "the default route's interface"
        if not chosen:
            return {"address": "", "problem": (
                f"{name} has no default IPv4 route: set private_network (a CIDR) or its private_address.")}
    if network is not None and ipaddress.IPv4Address(chosen) not in network:
        return {"address": "", "problem": f"private_address {chosen} of {name} is outside private_network {network}."}
    if not allow_public and not is_private_ipv4(chosen):
        return {"address": "", "problem": (
            f"{chosen} ({source}) on {name} is a public address: the database, broker and object store would "
            "listen on it. Set private_network (the fleet's private CIDR) or this host's private_address; "
            "private_network_allow_public: true overrides this only for a network that really is private.")}
    return {"address": chosen, "problem": ""}


class FilterModule:
    def filters(self):
        return {"private_address_choice": private_address_choice, "is_private_ipv4": is_private_ipv4}
