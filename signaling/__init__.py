"""WebRTC signaling for appointment calls, independent of the host application."""

from .app import create_signaling_app
from .broker import Broker, Member
from .envelopes import Envelope
from .handlers import close_room, hub_of
from .hooks import Admission, CallEvent, SignalingConfig, SignalingHooks
from .keys import CONFIG_KEY, HOOKS_KEY, STATE_KEY, SignalingState
from .memory_broker import InMemoryBroker
from .problems import ECHO_PROBLEMS, EchoProblem
from .protocol import CloseCode
from .redis_broker import RedisBroker
from .tokens import (
    JoinClaims,
    TokenRefused,
    derive_private_key,
    issue_join_token,
    key_id_for,
    verify_join_token,
)
from .turn import ice_servers, turn_credentials

__all__ = [
    "CONFIG_KEY",
    "ECHO_PROBLEMS",
    "HOOKS_KEY",
    "STATE_KEY",
    "Admission",
    "Broker",
    "CallEvent",
    "CloseCode",
    "EchoProblem",
    "Envelope",
    "InMemoryBroker",
    "JoinClaims",
    "Member",
    "RedisBroker",
    "SignalingConfig",
    "SignalingHooks",
    "SignalingState",
    "TokenRefused",
    "close_room",
    "create_signaling_app",
    "derive_private_key",
    "hub_of",
    "ice_servers",
    "issue_join_token",
    "key_id_for",
    "turn_credentials",
    "verify_join_token",
]
