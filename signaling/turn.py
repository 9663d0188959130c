"""Short-lived TURN credentials for coturn's TURN REST API (use-auth-secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any

MAX_TTL_SECONDS = 4 * 3600


def turn_credentials(*, secret: str, peer_id: str, ttl: int, now: datetime) -> tuple[str, str]:
    """Return (username, password) valid for ``ttl`` seconds (at most 4 h) from ``now``."""
    ttl = max(1, min(int(ttl), MAX_TTL_SECONDS))
    expiry = int(now.timestamp()) + ttl
    username = f"{expiry}:{peer_id}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    *,
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    secrets: Sequence[str],
    peer_id: str,
    ttl: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return RTCIceServer dicts; TURN credentials are signed with the first secret."""
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and secrets:
        # coturn accepts every configured static-auth-secret, so signing with the first one
        # lets operators rotate by prepending a new secret everywhere.
        username, credential = turn_credentials(
            secret=secrets[0], peer_id=peer_id, ttl=ttl, now=now
        )
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return servers
