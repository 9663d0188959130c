"""Join tokens and TURN credentials as functions."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from signaling import (
    TokenRefused,
    derive_private_key,
    ice_servers,
    issue_join_token,
    key_id_for,
    turn_credentials,
    verify_join_token,
)

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_derived_key_is_deterministic_and_round_trips() -> None:
    key = derive_private_key("dev-secret")
    raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw
    same = derive_private_key("dev-secret").private_bytes(*raw, serialization.NoEncryption())
    assert key.private_bytes(*raw, serialization.NoEncryption()) == same
    assert key_id_for(key.public_key()) != key_id_for(derive_private_key("other").public_key())
    kid = key_id_for(key.public_key())
    assert len(kid) == 16
    token = issue_join_token(
        private_key=key,
        kid=kid,
        appointment_id="apt-1",
        participant="desk-7",
        role="agent",
        not_before=NOW - timedelta(minutes=15),
        expires_at=NOW + timedelta(hours=1),
    )
    claims = verify_join_token(token, public_keys={kid: key.public_key()}, now=NOW)
    assert (claims.appointment_id, claims.participant, claims.role) == ("apt-1", "desk-7", "agent")
    assert claims.expires_at == NOW + timedelta(hours=1)
    with pytest.raises(TokenRefused) as info:
        verify_join_token(token, public_keys={kid: key.public_key()}, now=NOW + timedelta(hours=2))
    assert info.value.code == 4404
    with pytest.raises(ValueError, match="empty"):
        derive_private_key("")


def test_turn_credentials_follow_coturn_rest_api() -> None:
    username, password = turn_credentials(secret="s3cret", peer_id="desk-7", ttl=600, now=NOW)
    assert username == f"{int(NOW.timestamp()) + 600}:desk-7"
    expected = hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(password) == expected
    # The lifetime is capped at 4 hours.
    capped, _ = turn_credentials(secret="s3cret", peer_id="p", ttl=24 * 3600, now=NOW)
    assert int(capped.split(":")[0]) == int(NOW.timestamp()) + 4 * 3600


def test_ice_servers_sign_with_the_first_secret() -> None:
    servers = ice_servers(
        stun_urls=("stun:turn.example:3478",),
        turn_urls=("turn:turn.example:3478", "turns:turn.example:443?transport=tcp"),
        secrets=("new", "old"),
        peer_id="desk-7",
        ttl=3600,
        now=NOW,
    )
    assert servers[0] == {"urls": ["stun:turn.example:3478"]}
    turn = servers[1]
    assert turn["urls"] == ["turn:turn.example:3478", "turns:turn.example:443?transport=tcp"]
    assert (turn["username"], turn["credential"]) == turn_credentials(
        secret="new", peer_id="desk-7", ttl=3600, now=NOW
    )
    assert (
        ice_servers(stun_urls=(), turn_urls=("turn:x",), secrets=(), peer_id="p", ttl=1, now=NOW)
        == []
    )
