"""Settings: one frozen dataclass, built from ``VISIO_*`` environment variables.

This module is the only reader of ``os.environ`` in visio.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/visio.db"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_networks(value: str, *, name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated IP addresses or CIDR networks; ValueError naming ``name`` if one is bad."""
    networks = []
    for part in _split(value):
        try:
            networks.append(ip_network(part, strict=True))
        except ValueError as err:
            raise ValueError(
                f"{name}: {part!r} is not an IP address or a CIDR network ({err}); "
                "write e.g. 10.0.0.5, 10.0.0.0/8 or fd00::/8, separated by commas"
            ) from err
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything visio reads from its environment."""

    database_url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy async URL; SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""
    host: str = "127.0.0.1"
    """Address `visio serve` binds to."""
    port: int = 8080
    """Port `visio serve` listens on."""
    secret_key: str = ""
    """Secret for signing; `make run` keeps a generated dev key in var/secret_key."""
    base_url: str = "http://127.0.0.1:8080"
    """Public base URL, used in links and for the allowed WebSocket Origin."""
    log_level: str = "INFO"
    """Python logging level name."""
    token_ttl_seconds: int = 12 * 3600
    """Lifetime of an API bearer token."""
    login_max_failures: int = 5
    """Failed logins of one (account, address) pair inside the window before that pair gets 429."""
    login_address_max_failures: int = 20
    """Failed logins from one address (any account) before 429 on accounts it never logged into."""
    login_account_max_failures: int = 10
    """Failed logins on one account (any address) before 429 for addresses that failed on it
    and never logged into it."""
    login_window_seconds: int = 900
    """Window over which failed logins are counted."""
    login_remember_days: int = 90
    """How long an address that logged into an account stays exempt from the wider budgets."""
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    """Reverse proxies whose X-Forwarded-For is believed (IPs or CIDR networks); none by default."""
    metrics_allowed: tuple[IPv4Network | IPv6Network, ...] = (
        ip_network("127.0.0.0/8"), ip_network("::1/128"))
    """Client addresses (IPs or CIDR networks) served GET /metrics and GET /readyz."""
    log_format: str = "text"
    """Log lines as text, or as one JSON object per line ("json") with the request id."""
    search_rate_per_minute: int = 60
    """Slot searches one user may run per minute (a token bucket of that size); 429 beyond."""
    search_concurrency: int = 4
    """Slot searches running at once in one process; further ones wait in line."""
    search_max_wait_seconds: float = 2.0
    """How long a slot search waits for a free place in line before 429 with Retry-After 1."""
    search_cache_entries: int = 256
    """Slot searches (site, theme, filters, window) whose loaded data one process keeps,
    checked against the database's change counters on every use; 0 keeps none."""
    redis_url: str = ""
    """Redis URL linking several signaling instances; empty for a single process."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to open signaling WebSockets (base_url's origin is always allowed)."""
    join_before_seconds: int = 15 * 60
    """A join token is valid from the appointment's start minus this."""
    join_after_seconds: int = 30 * 60
    """A join token is valid until the appointment's end plus this."""
    stun_urls: tuple[str, ...] = ()
    """STUN URLs handed to clients."""
    turn_urls: tuple[str, ...] = ()
    """TURN URLs handed to clients with short-lived credentials."""
    turn_secrets: tuple[str, ...] = ()
    """coturn static-auth-secret(s); the first signs, all are listed for rotation."""
    turn_ttl_seconds: int = 4 * 3600
    """Lifetime of TURN credentials (at most 4 h)."""
    echo_max_sessions: int = 4
    """Concurrent test calls (echo peers) per instance."""
    signing_key_path: str = ""
    """Ed25519 private key (PEM) for join tokens; derived from secret_key when empty."""
    mail_from: str = "visio@localhost"
    """Service mailbox: the ORGANIZER of invitations and the sender of mails."""
    calendar_key: str = ""
    """Key encrypting imported calendars' credentials (Fernet); derived from secret_key
    when empty."""
    calendar_allow_private: bool = False
    """Let imported calendars live on loopback and private addresses (tests only; metadata
    addresses stay refused)."""
    calendar_fetch_minutes: int = 15
    """How often staff members' imported calendars are fetched."""
    calendar_check_seconds: int = 60
    """How often the background job looks for calendars due (and the delay before its
    first look after start-up)."""
    calendars_per_staff: int = 5
    """Calendars one staff member may register: each is fetched and expanded every round."""
    calendar_expand_seconds: float = 20.0
    """Time one calendar's expansion may take, in its own process, before it is killed."""
    calendar_expand_memory_mb: int = 256
    """Memory one calendar's expansion may add to its process (RLIMIT_AS)."""
    call_fallback_seconds: int = 60
    """A call not connected this long shows the desk's fallback phone number on both sides."""
    smtp_host: str = ""
    """SMTP server for e-mail notifications; none configured means e-mails wait (retried)."""
    smtp_port: int = 25
    """SMTP port."""
    smtp_security: str = "none"
    """SMTP transport security: none, starttls or tls."""
    smtp_username: str = ""
    """SMTP login (none when empty)."""
    smtp_password: str = ""
    """SMTP password."""
    sms_adapter: str = "log"
    """SMS adapter: log (development: one line, no text, no number) or http (a gateway)."""
    sms_http_url: str = ""
    """The SMS gateway's URL (POST JSON {to, text, reference})."""
    sms_http_token: str = ""
    """Bearer token of the SMS gateway."""
    sms_fallback_url: str = ""
    """A second SMS gateway, tried when the first fails temporarily."""
    sms_fallback_token: str = ""
    """Bearer token of the fallback gateway."""
    dispatch: bool = False
    """Run the notification dispatcher in `visio serve` (VISIO_DISPATCH, on by default)."""
    dispatch_interval_seconds: float = 5.0
    """How often the dispatcher looks for due messages."""
    dispatch_batch: int = 50
    """Messages claimed at once by one dispatcher."""
    dispatch_concurrency: int = 1
    """Sends at once per dispatcher (one SMTP connection each); a crash may repeat as many."""
    dispatch_lease_seconds: float = 120.0
    """How long a claim holds; a dispatcher that died mid-send loses its rows after it."""
    dispatch_retry_seconds: float = 30.0
    """First wait after a temporary failure; it doubles at each attempt."""
    dispatch_retry_max_seconds: float = 3600.0
    """Longest wait between attempts."""
    dispatch_max_attempts: int = 12
    """Attempts after which a temporary failure is recorded as failed."""
    notify_daily_cap: int = 10
    """Messages one recipient may receive in 24 hours; beyond, they are skipped."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Unrecognised VISIO_* variables: `visio serve` warns about them (typos)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``VISIO_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        known = {
            "VISIO_SMTP_HOST", "VISIO_SMTP_PORT",
            "VISIO_SMTP_SECURITY", "VISIO_SMTP_USERNAME", "VISIO_SMTP_PASSWORD",
            "VISIO_SMS_ADAPTER", "VISIO_SMS_HTTP_URL", "VISIO_SMS_HTTP_TOKEN",
            "VISIO_SMS_FALLBACK_URL", "VISIO_SMS_FALLBACK_TOKEN", "VISIO_DISPATCH",
            "VISIO_DISPATCH_INTERVAL_SECONDS", "VISIO_DISPATCH_BATCH",
            "VISIO_DISPATCH_LEASE_SECONDS", "VISIO_DISPATCH_RETRY_SECONDS",
            "VISIO_DISPATCH_CONCURRENCY",
            "VISIO_DISPATCH_RETRY_MAX_SECONDS", "VISIO_DISPATCH_MAX_ATTEMPTS",
            "VISIO_NOTIFY_DAILY_CAP",
            "VISIO_DATABASE_URL", "VISIO_HOST", "VISIO_PORT", "VISIO_SECRET_KEY",
            "VISIO_BASE_URL", "VISIO_LOG_LEVEL", "VISIO_TOKEN_TTL_SECONDS",
            "VISIO_LOGIN_MAX_FAILURES", "VISIO_LOGIN_WINDOW_SECONDS", "VISIO_REDIS_URL",
            "VISIO_ALLOWED_ORIGINS", "VISIO_JOIN_BEFORE_SECONDS", "VISIO_JOIN_AFTER_SECONDS",
            "VISIO_STUN_URLS", "VISIO_TURN_URLS", "VISIO_TURN_SECRETS",
            "VISIO_TURN_TTL_SECONDS", "VISIO_ECHO_MAX_SESSIONS", "VISIO_SIGNING_KEY_PATH",
            "VISIO_SECRET_KEY_FILE", "VISIO_LOGIN_ADDRESS_MAX_FAILURES",
            "VISIO_LOGIN_ACCOUNT_MAX_FAILURES", "VISIO_LOGIN_REMEMBER_DAYS",
            "VISIO_TRUSTED_PROXIES", "VISIO_SEARCH_RATE_PER_MINUTE", "VISIO_SEARCH_CONCURRENCY",
            "VISIO_SEARCH_MAX_WAIT_SECONDS", "VISIO_CALL_FALLBACK_SECONDS",
            "VISIO_MAIL_FROM", "VISIO_CALENDAR_KEY", "VISIO_CALENDAR_ALLOW_PRIVATE",
            "VISIO_CALENDAR_FETCH_MINUTES", "VISIO_METRICS_ALLOWED", "VISIO_LOG_FORMAT",
            "VISIO_CALENDAR_CHECK_SECONDS", "VISIO_CALENDARS_PER_STAFF",
            "VISIO_CALENDAR_EXPAND_SECONDS", "VISIO_CALENDAR_EXPAND_MEMORY_MB",
        }
        secret = env.get("VISIO_SECRET_KEY", "")
        secret_file = env.get("VISIO_SECRET_KEY_FILE", "")
        if not secret and secret_file:
            secret = load_or_create_secret(Path(secret_file))
        return cls(
            database_url=env.get("VISIO_DATABASE_URL", DEFAULT_DATABASE_URL),
            host=env.get("VISIO_HOST", "127.0.0.1"),
            port=int(env.get("VISIO_PORT", "8080")),
            secret_key=secret,
            base_url=env.get("VISIO_BASE_URL", "http://127.0.0.1:8080").rstrip("/"),
            log_level=env.get("VISIO_LOG_LEVEL", "INFO").upper(),
            token_ttl_seconds=int(env.get("VISIO_TOKEN_TTL_SECONDS", str(12 * 3600))),
            login_max_failures=int(env.get("VISIO_LOGIN_MAX_FAILURES", "5")),
            login_address_max_failures=int(env.get("VISIO_LOGIN_ADDRESS_MAX_FAILURES", "20")),
            login_account_max_failures=int(env.get("VISIO_LOGIN_ACCOUNT_MAX_FAILURES", "10")),
            login_window_seconds=int(env.get("VISIO_LOGIN_WINDOW_SECONDS", "900")),
            login_remember_days=int(env.get("VISIO_LOGIN_REMEMBER_DAYS", "90")),
            trusted_proxies=parse_networks(env.get("VISIO_TRUSTED_PROXIES", ""),
                                           name="VISIO_TRUSTED_PROXIES"),
            metrics_allowed=parse_networks(env.get("VISIO_METRICS_ALLOWED",
                                                   "127.0.0.0/8,::1"),
                                           name="VISIO_METRICS_ALLOWED"),
            log_format=_choice(env.get("VISIO_LOG_FORMAT", "text"), ("text", "json"),
                               "VISIO_LOG_FORMAT"),
            search_rate_per_minute=int(env.get("VISIO_SEARCH_RATE_PER_MINUTE", "60")),
            search_concurrency=int(env.get("VISIO_SEARCH_CONCURRENCY", "4")),
            search_max_wait_seconds=float(env.get("VISIO_SEARCH_MAX_WAIT_SECONDS", "2")),
            search_cache_entries=int(env.get("VISIO_SEARCH_CACHE_ENTRIES", "256")),
            redis_url=env.get("VISIO_REDIS_URL", ""),
            allowed_origins=_split(env.get("VISIO_ALLOWED_ORIGINS", "")),
            join_before_seconds=int(env.get("VISIO_JOIN_BEFORE_SECONDS", "900")),
            join_after_seconds=int(env.get("VISIO_JOIN_AFTER_SECONDS", "1800")),
            stun_urls=_split(env.get("VISIO_STUN_URLS", "")),
            turn_urls=_split(env.get("VISIO_TURN_URLS", "")),
            turn_secrets=_split(env.get("VISIO_TURN_SECRETS", "")),
            turn_ttl_seconds=min(int(env.get("VISIO_TURN_TTL_SECONDS", "14400")), 14400),
            echo_max_sessions=int(env.get("VISIO_ECHO_MAX_SESSIONS", "4")),
            signing_key_path=env.get("VISIO_SIGNING_KEY_PATH", ""),
            mail_from=env.get("VISIO_MAIL_FROM", "visio@localhost"),
            calendar_key=env.get("VISIO_CALENDAR_KEY", ""),
            calendar_allow_private=env.get("VISIO_CALENDAR_ALLOW_PRIVATE", "") == "1",
            calendar_fetch_minutes=int(env.get("VISIO_CALENDAR_FETCH_MINUTES", "15")),
            calendar_check_seconds=int(env.get("VISIO_CALENDAR_CHECK_SECONDS", "60")),
            calendars_per_staff=int(env.get("VISIO_CALENDARS_PER_STAFF", "5")),
            calendar_expand_seconds=float(env.get("VISIO_CALENDAR_EXPAND_SECONDS", "20")),
            calendar_expand_memory_mb=int(env.get("VISIO_CALENDAR_EXPAND_MEMORY_MB", "256")),
            call_fallback_seconds=int(env.get("VISIO_CALL_FALLBACK_SECONDS", "60")),
            smtp_host=env.get("VISIO_SMTP_HOST", ""),
            smtp_port=int(env.get("VISIO_SMTP_PORT", "25")),
            smtp_security=_choice(env.get("VISIO_SMTP_SECURITY", "none"),
                                  ("none", "starttls", "tls"), "VISIO_SMTP_SECURITY"),
            smtp_username=env.get("VISIO_SMTP_USERNAME", ""),
            smtp_password=env.get("VISIO_SMTP_PASSWORD", ""),
            sms_adapter=_choice(env.get("VISIO_SMS_ADAPTER", "log"), ("log", "http"),
                                "VISIO_SMS_ADAPTER"),
            sms_http_url=env.get("VISIO_SMS_HTTP_URL", ""),
            sms_http_token=env.get("VISIO_SMS_HTTP_TOKEN", ""),
            sms_fallback_url=env.get("VISIO_SMS_FALLBACK_URL", ""),
            sms_fallback_token=env.get("VISIO_SMS_FALLBACK_TOKEN", ""),
            dispatch=env.get("VISIO_DISPATCH", "1") not in ("0", "false", "off", "no"),
            dispatch_interval_seconds=float(env.get("VISIO_DISPATCH_INTERVAL_SECONDS", "5")),
            dispatch_batch=int(env.get("VISIO_DISPATCH_BATCH", "50")),
            dispatch_lease_seconds=float(env.get("VISIO_DISPATCH_LEASE_SECONDS", "120")),
            dispatch_concurrency=int(env.get("VISIO_DISPATCH_CONCURRENCY", "1")),
            dispatch_retry_seconds=float(env.get("VISIO_DISPATCH_RETRY_SECONDS", "30")),
            dispatch_retry_max_seconds=float(
                env.get("VISIO_DISPATCH_RETRY_MAX_SECONDS", "3600")),
            dispatch_max_attempts=int(env.get("VISIO_DISPATCH_MAX_ATTEMPTS", "12")),
            notify_daily_cap=int(env.get("VISIO_NOTIFY_DAILY_CAP", "10")),
            extra={k: v for k, v in env.items() if k.startswith("VISIO_") and k not in known},
        )


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``allowed``; a ValueError naming ``name`` otherwise."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def load_or_create_secret(path: Path) -> str:
    """Read a dev secret key from ``path``, generating it once if absent."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return value
