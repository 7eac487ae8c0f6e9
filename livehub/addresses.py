"""Client addresses as the rules that count by them see them.

Guest bans and the per-address limits must hold on every server process, so a
guest's address travels in the room's log with what the guest does. It travels as
a key, not as the address: an HMAC of the address under the server's secret, the
same on every process that shares the secret, and of no use to anyone who reads a
log or an export without it.
"""

from __future__ import annotations

import hashlib
import hmac


def address_key(secret: str, address: str) -> str:
    """A stable, non-reversible key for ``address`` (16 hex digits)."""
    digest = hmac.new(secret.encode(), b"client-address\x00" + address.encode(),
                      hashlib.sha256).hexdigest()
    return digest[:16]
