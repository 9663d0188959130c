"""Settings: one frozen dataclass, built from ``VISIO_*`` environment variables.

This module is the only reader of ``os.environ`` in visio. Each setting is declared once,
as a field: its variable (``VISIO_`` and the field's name in capitals), its default, how
its text is read and what it means all come from the field, so reading the environment
and warning about variables that are no setting (typos) cannot drift apart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/visio.db"
PREFIX = "VISIO_"
#: Read beside the settings: where ``VISIO_SECRET_KEY`` is kept when it is not given.
SECRET_KEY_FILE = "VISIO_SECRET_KEY_FILE"
#: Longest TURN credentials coturn is asked to honour.
TURN_TTL_MAX = 4 * 3600

T = TypeVar("T")
#: Reads a variable's text (the variable's name is for error messages).
Parse = Callable[[str, str], Any]


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


def _text(value: str, name: str) -> str:
    return value


def _url(value: str, name: str) -> str:
    return value.rstrip("/")


def _upper(value: str, name: str) -> str:
    return value.upper()


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from err


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError as err:
        raise ValueError(f"{name} must be a number, not {value!r}") from err


def _turn_ttl(value: str, name: str) -> int:
    return min(_int(value, name), TURN_TTL_MAX)


def _one(value: str, name: str) -> bool:
    return value == "1"


def _on(value: str, name: str) -> bool:
    return value.strip().lower() in ("1", "true", "on", "yes")


def _bits(value: str, name: str) -> int:
    """An IPv6 prefix length (1 to 128); a ValueError naming ``name`` otherwise."""
    bits = _int(value, name)
    if not 1 <= bits <= 128:
        raise ValueError(f"{name} must be between 1 and 128, not {value!r}")
    return bits


def _switch(value: str, name: str) -> bool:
    return value not in ("0", "false", "off", "no")


def _words(value: str, name: str) -> tuple[str, ...]:
    return _split(value)


#: The roles a ProConnect sign-in may be given by provisioning (never more).
PROVISION_ROLES = ("agent", "staff")


def _provisions(value: str, name: str) -> tuple[str, ...]:
    """Comma-separated ``key`` or ``key=role`` (role agent or staff; agent if left out)."""
    entries = _split(value)
    for entry in entries:
        key, _sep, role = entry.partition("=")
        if not key.strip() or (role and role.strip() not in PROVISION_ROLES):
            raise ValueError(f"{name} takes entries like example.gouv.fr or "
                             f"example.gouv.fr=staff (agent or staff), not {entry!r}")
    return entries


def _spaced(value: str, name: str) -> tuple[str, ...]:
    return tuple(value.replace(",", " ").split())


def _networks(value: str, name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return parse_networks(value, name=name)


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few words; anything else stops start-up naming the variable."""

    allowed: tuple[str, ...]

    def __call__(self, value: str, name: str) -> str:
        if value not in self.allowed:
            raise ValueError(f"{name} must be one of {', '.join(self.allowed)}, "
                             f"not {value!r}")
        return value


def _choice(*allowed: str) -> Choice:
    return Choice(allowed)


def setting(default: T, parse: Parse, doc: str, *, env_default: str | None = None) -> T:
    """A field read from ``VISIO_<NAME>`` with ``parse``; ``env_default`` is the text used
    when the variable is absent, if it differs from the dataclass default."""
    value: T = field(default=default, metadata={"parse": parse, "doc": doc,
                                                "env_default": env_default})
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything visio reads from its environment."""

    database_url: str = setting(
        DEFAULT_DATABASE_URL, _text,
        "SQLAlchemy async URL; SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in "
        "production.")
    database_connections: int = setting(
        20, _int,
        "Most PostgreSQL connections one process opens (half stay open in the pool); every "
        "process's, `--workers` and `visio worker` included, add up below PostgreSQL's "
        "max_connections. Requests beyond it wait for a connection.")
    host: str = setting(
        "127.0.0.1", _text,
        "Address `visio serve` binds to.")
    port: int = setting(
        8080, _int,
        "Port `visio serve` listens on.")
    secret_key: str = setting(
        "", _text,
        "Secret for signing; `make run` keeps a generated dev key in var/secret_key.")
    base_url: str = setting(
        "http://127.0.0.1:8080", _url,
        "Public base URL, used in links and for the allowed WebSocket Origin.")
    log_level: str = setting(
        "INFO", _upper,
        "Python logging level name.")
    token_ttl_seconds: int = setting(
        12 * 3600, _int,
        "Lifetime of an API bearer token.")
    login_max_failures: int = setting(
        5, _int,
        "Failed logins of one (account, address) pair inside the window before that pair "
        "gets 429.")
    login_address_max_failures: int = setting(
        20, _int,
        "Failed logins from one address (any account) before 429 on accounts it never "
        "logged into.")
    login_account_max_failures: int = setting(
        10, _int,
        "Failed logins on one account (any address) before 429 for addresses that failed "
        "on it and never logged into it.")
    login_window_seconds: int = setting(
        900, _int,
        "Window over which failed logins are counted.")
    login_remember_days: int = setting(
        90, _int,
        "How long an address that logged into an account stays exempt from the wider "
        "budgets.")
    login_ipv6_prefix: int = setting(
        64, _bits,
        "IPv6 clients are counted by network of this many bits (128: each address alone).")
    retention_usager_days: int = setting(
        90, _int,
        "Days after an appointment's end when the usager's name, phone, e-mail and the "
        "note for the operator are erased (the appointment itself stays for the figures).")
    retention_call_log_days: int = setting(
        180, _int,
        "Days a call's event log (joins, connections, statistics) is kept after the call.")
    retention_message_days: int = setting(
        30, _int,
        "Days a sent (or failed, or dropped) message's record, with its recipient's "
        "address, is kept after it was handled.")
    purge_batch_size: int = setting(
        500, _int,
        "Rows the retention purge handles per transaction (small, so that it never holds "
        "locks long).")
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = setting(
        (), _networks,
        "Reverse proxies whose X-Forwarded-For is believed (IPs or CIDR networks); none "
        "by default.")
    metrics_allowed: tuple[IPv4Network | IPv6Network, ...] = setting(
        (ip_network("127.0.0.0/8"), ip_network("::1/128")), _networks,
        "Client addresses (IPs or CIDR networks) served GET /metrics and GET /readyz.")
    log_format: str = setting(
        "text", _choice("text", "json"),
        "Log lines as text, or as one JSON object per line (\"json\") with the request id.")
    search_rate_per_minute: int = setting(
        60, _int,
        "Slot searches one user may run per minute (a token bucket of that size); 429 "
        "beyond.")
    search_concurrency: int = setting(
        4, _int,
        "Slot searches running at once in one process; further ones wait in line.")
    search_max_wait_seconds: float = setting(
        2.0, _float,
        "How long a slot search waits for a free place in line before 429 with "
        "Retry-After 1.")
    search_cache_entries: int = setting(
        256, _int,
        "Slot searches (site, theme, filters, window) whose loaded data one process "
        "keeps, checked against the database's change counters on every use; 0 keeps "
        "none.")
    redis_url: str = setting(
        "", _text,
        "Redis URL linking several signaling instances; empty for a single process.")
    allowed_origins: tuple[str, ...] = setting(
        (), _words,
        "Origins allowed to open signaling WebSockets (base_url's origin is always "
        "allowed).")
    join_before_seconds: int = setting(
        15 * 60, _int,
        "A join token is valid from the appointment's start minus this.")
    join_after_seconds: int = setting(
        30 * 60, _int,
        "A join token is valid until the appointment's end plus this.")
    outcome_delay_minutes: int = setting(
        10, _int,
        "An ended appointment is marked done or no-show this long after its end.")
    stun_urls: tuple[str, ...] = setting(
        (), _words,
        "STUN URLs handed to clients.")
    turn_urls: tuple[str, ...] = setting(
        (), _words,
        "TURN URLs handed to clients with short-lived credentials.")
    turn_secrets: tuple[str, ...] = setting(
        (), _words,
        "coturn static-auth-secret(s); the first signs, all are listed for rotation.")
    turn_ttl_seconds: int = setting(
        4 * 3600, _turn_ttl,
        "Lifetime of TURN credentials (at most 4 h).")
    echo_max_sessions: int = setting(
        4, _int,
        "Concurrent test calls (echo peers) per instance.")
    echo_allow_private_candidates: bool = setting(
        False, _on,
        "Let the echo peer probe loopback, private and link-local addresses an offer names "
        "(tests, a LAN-only deployment).")
    signing_key_path: str = setting(
        "", _text,
        "Ed25519 private key (PEM) for join tokens; derived from secret_key when empty.")
    mail_from: str = setting(
        "visio@localhost", _text,
        "Service mailbox: the ORGANIZER of invitations and the sender of mails.")
    calendar_key: str = setting(
        "", _text,
        "Key encrypting imported calendars' credentials (Fernet); derived from secret_key "
        "when empty.")
    calendar_allow_private: bool = setting(
        False, _one,
        "Let imported calendars live on loopback and private addresses (tests only; "
        "metadata addresses stay refused).")
    calendar_fetch_minutes: int = setting(
        15, _int,
        "How often staff members' imported calendars are fetched.")
    calendar_check_seconds: int = setting(
        60, _int,
        "How often the background job looks for calendars due (and the delay before its "
        "first look after start-up).")
    calendars_per_staff: int = setting(
        5, _int,
        "Calendars one staff member may register: each is fetched and expanded every round.")
    calendar_expand_seconds: float = setting(
        20.0, _float,
        "Time one calendar's expansion may take, in its own process, before it is killed.")
    calendar_expand_memory_mb: int = setting(
        256, _int,
        "Memory one calendar's expansion may add to its process (RLIMIT_AS).")
    call_fallback_seconds: int = setting(
        60, _int,
        "A call not connected this long shows the desk's fallback phone number on both "
        "sides.")
    call_video_max_kbps: int = setting(
        800, _int,
        "Cap of the video each call page sends, in kbit/s (the audio goes first on a weak "
        "link).")
    call_link_debug: bool = setting(
        False, _on,
        "Expose window.visioLinkQuality.feed on call pages, to feed the link state machine "
        "made-up measures (tests, the link bench); never in production.")
    smtp_host: str = setting(
        "", _text,
        "SMTP server for e-mail notifications; none configured means e-mails wait "
        "(retried).")
    smtp_port: int = setting(
        25, _int,
        "SMTP port.")
    smtp_security: str = setting(
        "none", _choice("none", "starttls", "tls"),
        "SMTP transport security: none, starttls or tls.")
    smtp_username: str = setting(
        "", _text,
        "SMTP login (none when empty).")
    smtp_password: str = setting(
        "", _text,
        "SMTP password.")
    sms_adapter: str = setting(
        "log", _choice("log", "http"),
        "SMS adapter: log (development: one line, no text, no number) or http (a "
        "gateway).")
    sms_http_url: str = setting(
        "", _text,
        "The SMS gateway's URL (POST JSON {to, text, reference}).")
    sms_http_token: str = setting(
        "", _text,
        "Bearer token of the SMS gateway.")
    sms_fallback_url: str = setting(
        "", _text,
        "A second SMS gateway, tried when the first fails temporarily.")
    sms_fallback_token: str = setting(
        "", _text,
        "Bearer token of the fallback gateway.")
    dispatch: bool = setting(
        False, _switch,
        "Run the notification dispatcher in `visio serve` (VISIO_DISPATCH, on by "
        "default).", env_default="1")
    dispatch_interval_seconds: float = setting(
        5.0, _float,
        "How often the dispatcher looks for due messages.")
    dispatch_batch: int = setting(
        50, _int,
        "Messages claimed at once by one dispatcher.")
    dispatch_concurrency: int = setting(
        1, _int,
        "Sends at once per dispatcher (one SMTP connection each); a crash may repeat as "
        "many.")
    dispatch_lease_seconds: float = setting(
        120.0, _float,
        "How long a claim holds; a dispatcher that died mid-send loses its rows after it.")
    dispatch_retry_seconds: float = setting(
        30.0, _float,
        "First wait after a temporary failure; it doubles at each attempt.")
    dispatch_retry_max_seconds: float = setting(
        3600.0, _float,
        "Longest wait between attempts.")
    dispatch_max_attempts: int = setting(
        12, _int,
        "Attempts after which a temporary failure is recorded as failed.")
    notify_daily_cap: int = setting(
        10, _int,
        "Messages one recipient may receive in 24 hours; beyond, they are skipped.")
    shutdown_grace_seconds: float = setting(
        10.0, _float,
        "On SIGTERM, how long `visio serve` lets requests in flight finish (and a "
        "dispatcher its send under way) before stopping them.")
    password_reset_minutes: int = setting(
        30, _int,
        "How long a password reset link is valid (it works once).")
    password_reset_window_seconds: int = setting(
        3600, _int,
        "The window in which password reset requests are counted.")
    password_reset_per_account: int = setting(
        3, _int,
        "Reset e-mails one account may receive inside the window; beyond, requests are "
        "answered the same way and send nothing.")
    password_reset_per_address: int = setting(
        10, _int,
        "Reset requests one client address may make inside the window (any account).")
    webhook_allow_private: bool = setting(
        False, _one,
        "Let webhook endpoints live on loopback and private addresses (tests only; "
        "metadata addresses stay refused).")
    webhook_interval_seconds: float = setting(
        2.0, _float,
        "How often the webhook sender looks for deliveries due.")
    webhook_timeout_seconds: float = setting(
        10.0, _float,
        "How long one delivery waits for the receiver's answer.")
    webhook_concurrency: int = setting(
        8, _int,
        "Endpoints delivered to at once by one process (each endpoint in order).")
    webhook_retry_seconds: float = setting(
        30.0, _float,
        "First wait after a failed delivery; it doubles at each attempt.")
    webhook_retry_max_seconds: float = setting(
        3600.0, _float,
        "Longest wait between two attempts of a delivery.")
    webhook_disable_after_seconds: int = setting(
        86400, _int,
        "An endpoint failing without a success for this long is disabled.")
    webhook_rotation_hours: int = setting(
        24, _int,
        "After a secret rotation, how long deliveries are also signed with the old secret.")
    proconnect_issuer: str = setting(
        "", _url,
        "ProConnect's issuer URL (its /.well-known/openid-configuration is read); empty: "
        "no ProConnect button.")
    proconnect_client_id: str = setting(
        "", _text, "The client id ProConnect's partners' space gave visio.")
    proconnect_client_secret: str = setting(
        "", _text, "The client secret ProConnect's partners' space gave visio.")
    proconnect_redirect_uri: str = setting(
        "", _text,
        "The callback registered with ProConnect; empty: base_url + /login/proconnect/callback.")
    proconnect_scopes: tuple[str, ...] = setting(
        ("openid", "email", "given_name", "usual_name", "uid", "siret"), _spaced,
        "Scopes asked for (space- or comma-separated).",
        env_default="openid email given_name usual_name uid siret")
    proconnect_acr_values: tuple[str, ...] = setting(
        (), _words,
        "Accepted acr values (comma-separated), asked for and required; empty: any.")
    proconnect_provision_domains: tuple[str, ...] = setting(
        (), _provisions,
        "E-mail domains whose ProConnect agents get an account at their first sign-in, "
        "as domain (an agent with no site) or domain=staff (staff with no desk); empty: "
        "none.")
    proconnect_provision_sirets: tuple[str, ...] = setting(
        (), _provisions,
        "SIRETs whose ProConnect agents get an account at their first sign-in, as siret "
        "(an agent with no site) or siret=staff (staff with no desk); empty: none.")
    extra: Mapping[str, str] = field(default_factory=dict)
    """Unrecognised VISIO_* variables: `visio serve` warns about them (typos)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``VISIO_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for declared in setting_fields():
            name = variable(declared)
            raw = env.get(name, declared.metadata["env_default"])
            if raw is not None:
                values[declared.name] = declared.metadata["parse"](raw, name)
        secret_file = env.get(SECRET_KEY_FILE, "")
        if not values.get("secret_key") and secret_file:
            values["secret_key"] = load_or_create_secret(Path(secret_file))
        return cls(**values, extra=unknown(env))


def setting_fields() -> Iterator[Field[Any]]:
    """The fields of ``Settings`` read from a variable (all but ``extra``)."""
    return (f for f in fields(Settings) if "parse" in f.metadata)


def variable(declared: Field[Any]) -> str:
    """The environment variable of a setting."""
    return PREFIX + declared.name.upper()


def variables() -> dict[str, str]:
    """Every variable visio reads, with what it means."""
    found = {variable(f): str(f.metadata["doc"]) for f in setting_fields()}
    found[SECRET_KEY_FILE] = ("File keeping the secret key when VISIO_SECRET_KEY is empty; "
                              "created once with a random key.")
    return found


def unknown(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``VISIO_*`` variables that are no setting (typos, settings removed since)."""
    known = variables()
    return {k: v for k, v in environ.items() if k.startswith(PREFIX) and k not in known}


def load_or_create_secret(path: Path) -> str:
    """Read a dev secret key from ``path``, generating it once if absent."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return value
