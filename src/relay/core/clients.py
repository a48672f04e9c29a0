"""Who a request comes from, for counting: one client is an IPv4 address or an IPv6 /64.

A home or mobile connection gets a whole IPv6 /64, so counting single IPv6 addresses lets one client
rotate through billions of them. Both the admin token's throttle and the thank-you post's rate limit
count by this; each hashes the result its own way, so no address is stored.
"""

from __future__ import annotations

import ipaddress


def client_network(address: str | None) -> str | None:
    """``203.0.113.7`` → itself; ``2001:db8::1`` → ``2001:db8::/64``; anything else → ``None``."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
