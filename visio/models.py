"""ORM models. Alembic migrations are the only source of the schema; these mirror them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from visio.clock import utcnow
from visio.domain.usager_search import search_text


def new_id() -> str:
    """Return a new random identifier (UUID4 as text)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, always timezone-aware UTC in Python, whatever the database."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetimes are never stored")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite keeps text; a fixed UTC format keeps ordering and comparisons right.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value.tzinfo is UTC:
            return value
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; every relationship is loaded explicitly (no lazy loads)."""

    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012
        datetime: UTCDateTime(),
        date: sa.Date(),
        time: sa.Time(),
    }
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


ID = sa.String(36)


class Theme(Base):
    __tablename__ = "themes"

    code: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    label_fr: Mapped[str] = mapped_column(sa.String(120))
    label_nl: Mapped[str] = mapped_column(sa.String(120))


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200))
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    country: Mapped[str] = mapped_column(sa.String(2))
    kind: Mapped[str] = mapped_column(sa.String(20))
    languages: Mapped[list[str]] = mapped_column(sa.JSON)
    timezone: Mapped[str] = mapped_column(sa.String(64))

    __table_args__ = (
        sa.CheckConstraint("country IN ('FR', 'BE')", name="country"),
        sa.CheckConstraint("kind IN ('national', 'cross_border')", name="kind"),
    )


class Desk(Base):
    __tablename__ = "desks"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("operators.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    # Shown on both sides of a call that cannot connect (the usager is called instead).
    fallback_phone: Mapped[str | None] = mapped_column(sa.String(32))


class DeskDepartement(Base):
    """A département a desk serves; a desk without any serves every site."""

    __tablename__ = "desk_departements"

    desk_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("desks.id"), primary_key=True)
    departement: Mapped[str] = mapped_column(sa.String(3), primary_key=True, index=True)


class DeskCommune(Base):
    """A commune narrowing a desk's département: listed communes only, in that one."""

    __tablename__ = "desk_communes"

    desk_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("desks.id"), primary_key=True)
    commune_insee: Mapped[str] = mapped_column(sa.String(5), primary_key=True)
    departement: Mapped[str] = mapped_column(sa.String(3))


class StaffMember(Base):
    __tablename__ = "staff_members"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    desk_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("desks.id"), index=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    languages: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class Service(Base):
    __tablename__ = "services"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("operators.id"), index=True)
    theme: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("themes.code"))
    duration_minutes: Mapped[int] = mapped_column(sa.Integer, default=30)
    buffer_minutes: Mapped[int] = mapped_column(sa.Integer, default=0)
    languages: Mapped[list[str]] = mapped_column(sa.JSON)
    notice_minutes: Mapped[int] = mapped_column(sa.Integer, default=120)
    horizon_days: Mapped[int] = mapped_column(sa.Integer, default=56)

    __table_args__ = (
        sa.UniqueConstraint("operator_id", "theme", name="uq_services_operator_theme"),
        sa.CheckConstraint("duration_minutes BETWEEN 5 AND 480", name="duration"),
        sa.CheckConstraint("buffer_minutes BETWEEN 0 AND 240", name="buffer"),
    )


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(20))
    commune: Mapped[str] = mapped_column(sa.String(120))
    address: Mapped[str] = mapped_column(sa.String(300))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    country: Mapped[str] = mapped_column(sa.String(2), default="FR")
    booths: Mapped[int] = mapped_column(sa.Integer, default=1)
    # INSEE codes: the département ("59", "2A", "971") and the commune ("59309").
    departement: Mapped[str | None] = mapped_column(sa.String(3), index=True)
    commune_insee: Mapped[str | None] = mapped_column(sa.String(5))
    # The number usagers call (printed on the convocation); E.164.
    phone: Mapped[str | None] = mapped_column(sa.String(32))

    __table_args__ = (
        sa.CheckConstraint("kind IN ('fixed', 'itinerant')", name="kind"),
        sa.CheckConstraint("booths BETWEEN 1 AND 50", name="booths"),
    )


class SiteHours(Base):
    """One opening range of a fixed site on one weekday (0 = Monday)."""

    __tablename__ = "site_hours"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    site_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("sites.id"), index=True)
    weekday: Mapped[int] = mapped_column(sa.Integer)
    opens: Mapped[time]
    closes: Mapped[time]

    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        sa.CheckConstraint("opens < closes", name="range"),
    )


class TourStop(Base):
    """A dated stop of an itinerant site: where the bus is, and its hours that day."""

    __tablename__ = "tour_stops"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    site_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("sites.id"), index=True)
    day: Mapped[date]
    commune: Mapped[str] = mapped_column(sa.String(120))
    place: Mapped[str] = mapped_column(sa.String(300))
    # The commune's INSEE code; its département decides which desks serve the stop.
    commune_insee: Mapped[str | None] = mapped_column(sa.String(5))
    # [["09:30", "12:30"], ["13:30", "16:00"]], wall-clock in the site's zone.
    hours: Mapped[list[list[str]]] = mapped_column(sa.JSON)

    __table_args__ = (sa.UniqueConstraint("site_id", "day", name="uq_tour_stops_site_day"),)


class ClosureDay(Base):
    """A date on which a site, an operator or a desk is closed (besides public holidays)."""

    __tablename__ = "closure_days"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    site_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("sites.id"), index=True)
    operator_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("operators.id"), index=True)
    desk_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("desks.id"), index=True)
    day: Mapped[date]
    reason: Mapped[str] = mapped_column(sa.String(200), default="")

    __table_args__ = (
        sa.CheckConstraint(
            "(CASE WHEN site_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN operator_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN desk_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_owner",
        ),
    )


class AvailabilityRule(Base):
    """A weekly availability range of a staff member, in the operator's zone."""

    __tablename__ = "availability_rules"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    staff_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("staff_members.id"), index=True)
    weekday: Mapped[int] = mapped_column(sa.Integer)
    opens: Mapped[time]
    closes: Mapped[time]
    valid_from: Mapped[date | None]
    valid_until: Mapped[date | None]

    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        sa.CheckConstraint("opens < closes", name="range"),
    )


class AvailabilityOverride(Base):
    """A date whose availability replaces the weekly rules; no range means closed."""

    __tablename__ = "availability_overrides"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    staff_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("staff_members.id"), index=True)
    day: Mapped[date]
    opens: Mapped[time | None]
    closes: Mapped[time | None]


class BusyPeriod(Base):
    """Time a staff member is away or busy (absence, or later an imported calendar)."""

    __tablename__ = "busy_periods"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    staff_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("staff_members.id"), index=True)
    start: Mapped[datetime]
    end: Mapped[datetime]
    source: Mapped[str] = mapped_column(sa.String(40), default="absence")
    reason: Mapped[str] = mapped_column(sa.String(200), default="")


class SearchVersion(Base):
    """How often what slot search caches has changed, per scope (``site:<id>``,
    ``desk:<id>``, ``catalogue``, ``booked:site:<id>``, ``booked:staff:<id>``).

    Written only by the triggers of migration 0008, in the writing transaction.
    """

    __tablename__ = "search_versions"

    scope: Mapped[str] = mapped_column(sa.String(60), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger)


class SearchTouch(Base):
    """A scope touched by a statement of a transaction not yet committed (PostgreSQL):
    noted by statement triggers, turned into ``search_versions`` bumps at commit."""

    __tablename__ = "search_touches"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(sa.String(60))
    txid: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)


class ImportedCalendar(Base):
    """A staff member's own calendar (ICS or CalDAV URL), fetched for its busy time.

    Its busy periods are ``BusyPeriod`` rows with source ``cal:<id>``; a failed fetch
    keeps them and records the error.
    """

    __tablename__ = "imported_calendars"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    staff_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("staff_members.id"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    # Username and password, encrypted (Fernet) with the calendar key from settings.
    credentials: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    etag: Mapped[str | None] = mapped_column(sa.String(200))
    last_modified: Mapped[str | None] = mapped_column(sa.String(100))
    busy_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    # An instance's claim on the calendar while it fetches it: one fetch at a time across
    # instances; a claim left by an instance that died lapses at this instant.
    fetching_until: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'ok', 'error')", name="status"),
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(12))
    staff_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("staff_members.id"))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The account's language for what is sent to it (None: French).
    language: Mapped[str | None] = mapped_column(sa.String(5))
    # The ProConnect identity (OpenID Connect ``sub``) linked to the account.
    oidc_sub: Mapped[str | None] = mapped_column(sa.String(255), index=True, unique=True)

    __table_args__ = (
        sa.CheckConstraint("role IN ('agent', 'staff', 'admin', 'coordinator')", name="role"),
        # A staff account with no staff member (ProConnect provisioning) sees nothing
        # until an administrator links it (migration 0020 dropped the old check).
    )


class UserSite(Base):
    """An agent's attachment to a France Services site."""

    __tablename__ = "user_sites"

    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"), primary_key=True)
    site_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("sites.id"), primary_key=True)


class UserDepartement(Base):
    """A département a coordinator oversees (its sites, and the desks serving it)."""

    __tablename__ = "user_departements"

    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"), primary_key=True)
    departement: Mapped[str] = mapped_column(sa.String(3), primary_key=True)


class CalendarFeed(Base):
    """A secret agenda feed of a staff member, a desk or a site; the token is hashed."""

    __tablename__ = "calendar_feeds"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"), index=True)
    scope: Mapped[str] = mapped_column(sa.String(5))
    target_id: Mapped[str] = mapped_column(ID)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    language: Mapped[str] = mapped_column(sa.String(5))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint("scope IN ('staff', 'desk', 'site')", name="scope"),
    )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginFailure(Base):
    """A failed login, counted per account key and per address for throttling."""

    __tablename__ = "login_failures"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    # SHA-256 of the lower-cased e-mail given, whether or not such an account exists.
    account_key: Mapped[str] = mapped_column(sa.String(64), index=True)
    address: Mapped[str] = mapped_column(sa.String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


class LoginSuccess(Base):
    """An address that logged into an account: exempt from the wider login budgets."""

    __tablename__ = "login_successes"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    # SHA-256 of the lower-cased e-mail, as in login_failures.
    account_key: Mapped[str] = mapped_column(sa.String(64), index=True)
    address: Mapped[str] = mapped_column(sa.String(64))
    at: Mapped[datetime] = mapped_column(index=True)


class PasswordReset(Base):
    """A single-use link to choose a new password; only the token's digest is kept."""

    __tablename__ = "password_resets"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # The administrator who forced the reset (None: asked for from the login page).
    forced_by: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("users.id"))


class PasswordResetRequest(Base):
    """A request for a reset link, counted per account key and per address to throttle."""

    __tablename__ = "password_reset_requests"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    # SHA-256 of the lower-cased e-mail given, whether or not such an account exists.
    account_key: Mapped[str] = mapped_column(sa.String(64), index=True)
    address: Mapped[str] = mapped_column(sa.String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


class AccountMail(Base):
    """An e-mail to an account (a reset link), written in the transaction that asks for
    it and sent by the dispatcher; the link is erased once sent."""

    __tablename__ = "account_mail"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(24))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    language: Mapped[str] = mapped_column(sa.String(5))
    link: Mapped[str | None] = mapped_column(sa.String(500))
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    due_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        sa.Index("ix_account_mail_status_due", "status", "due_at"),
    )


class WebhookEndpoint(Base):
    """Where an operator's software wants to hear of its appointments."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("operators.id"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    events: Mapped[list[str]] = mapped_column(sa.JSON)
    # The signing secret (``whsec_`` and base64), and the one it replaced while both hold.
    secret: Mapped[str] = mapped_column(sa.String(200))
    previous_secret: Mapped[str | None] = mapped_column(sa.String(200))
    previous_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    # gone (the receiver answered 410) or failing (a day of failures).
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(40))
    failing_since: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event for one endpoint, written in the transaction of the change behind it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    # The Standard Webhooks ``webhook-id`` (``msg_...``): receivers de-duplicate by it.
    event_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    endpoint_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("webhook_endpoints.id"))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    appointment_id: Mapped[str | None] = mapped_column(ID)
    appointment_version: Mapped[int] = mapped_column(sa.Integer)
    # Order of writing per endpoint (microseconds since the epoch, then the version).
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(sa.String(64))
    finished_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.String(300))

    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'delivered', 'abandoned')", name="status"),
        sa.Index("ix_webhook_deliveries_endpoint_status_seq", "endpoint_id", "status", "seq"),
        sa.Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: its answer's status and how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("webhook_deliveries.id"))
    endpoint_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("webhook_endpoints.id"))
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    latency_ms: Mapped[int] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.String(300))

    __table_args__ = (sa.Index("ix_webhook_attempts_endpoint_at", "endpoint_id", "at"),)


#: The columns GET /figures reads from appointments besides ``start`` (migration 0021).
FIGURES_COLUMNS = ["site_id", "operator_id", "theme", "status", "cancelled_by",
                   "reschedule_count", "delay_hours", "offered_delay_hours", "id",
                   "call_attempted", "call_connected", "call_kiosk_joined",
                   "call_operator_joined", "call_seconds_to_connect", "call_duration_seconds",
                   "call_audio_only", "call_ended_by_failure"]


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(sa.String(12), default="booked")
    site_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("sites.id"))
    stop_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("tour_stops.id"))
    booth: Mapped[int] = mapped_column(sa.Integer)
    operator_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("operators.id"))
    desk_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("desks.id"))
    staff_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("staff_members.id"))
    service_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("services.id"))
    theme: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("themes.code"))
    start: Mapped[datetime]
    end: Mapped[datetime]
    # end + the service's buffer: the staff member's time this appointment holds.
    staff_until: Mapped[datetime]
    usager_first_name: Mapped[str] = mapped_column(sa.String(100))
    usager_last_name: Mapped[str] = mapped_column(sa.String(100))
    usager_phone: Mapped[str | None] = mapped_column(sa.String(32))
    usager_email: Mapped[str | None] = mapped_column(sa.String(254))
    usager_language: Mapped[str] = mapped_column(sa.String(5))
    usager_consent: Mapped[bool] = mapped_column(sa.Boolean)
    booked_by: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancel_reason: Mapped[str | None] = mapped_column(sa.String(500))
    # The agent's question for the operator (never in a message, feed, .ics or log).
    note: Mapped[str | None] = mapped_column(sa.String(1000))
    # Who cancelled: agent, staff, usager (by their link), admin or closure.
    cancelled_by: Mapped[str | None] = mapped_column(sa.String(12))
    # When an agent first saw a cancellation by the usager (None: still new).
    cancel_seen_at: Mapped[datetime | None]
    # Since when a staff member's absence or closed day covers it (None: nothing to do).
    to_rebook_since: Mapped[datetime | None]
    # Names and phone folded for the agent's search (visio.domain.usager_search); kept
    # in step by the flush hook below, whichever service writes the usager.
    usager_search: Mapped[str] = mapped_column(sa.String(400), default="",
                                               server_default="")
    # How often it was moved; the start of the first slot offered when it was booked;
    # when its outcome (done, no_show) was set, and why it was last corrected.
    reschedule_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    first_offered_start: Mapped[datetime | None]
    # The call's outcome (its row in call_outcomes), copied here by a trigger on that
    # table (migration 0021), so that the figures read one index and join nothing.
    call_attempted: Mapped[bool | None]
    call_connected: Mapped[bool | None]
    call_kiosk_joined: Mapped[bool | None]
    call_operator_joined: Mapped[bool | None]
    call_seconds_to_connect: Mapped[float | None] = mapped_column(sa.Float)
    call_duration_seconds: Mapped[float | None] = mapped_column(sa.Float)
    call_audio_only: Mapped[bool | None]
    call_ended_by_failure: Mapped[bool | None]
    # From booking (created_at) to start and to first_offered_start, in hours: kept by a
    # trigger on appointments (migration 0021), read by the figures' percentiles.
    delay_hours: Mapped[float | None] = mapped_column(sa.Float)
    offered_delay_hours: Mapped[float | None] = mapped_column(sa.Float)
    outcome_at: Mapped[datetime | None]
    outcome_reason: Mapped[str | None] = mapped_column(sa.String(500))
    # When the retention purge erased the usager's details and the note (None: kept).
    usager_erased_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('booked', 'cancelled', 'done', 'no_show')", name="status"
        ),
        # On PostgreSQL it also covers what the figures read: an index-only scan.
        sa.Index("ix_appointments_start", "start", postgresql_include=FIGURES_COLUMNS),
        sa.CheckConstraint('start < "end"', name="range"),
        sa.CheckConstraint('staff_until >= "end"', name="staff_until"),
        sa.Index("ix_appointments_staff_start", "staff_id", "start"),
        sa.Index("ix_appointments_site_start", "site_id", "start",
                 postgresql_include=[c for c in FIGURES_COLUMNS if c != "site_id"]),
        sa.Index("ix_appointments_operator_start", "operator_id", "start"),
        # A trigram index answers LIKE '%helene%' on PostgreSQL; SQLite gets a plain one.
        sa.Index("ix_appointments_usager_search", "usager_search", postgresql_using="gin",
                 postgresql_ops={"usager_search": "gin_trgm_ops"}),
        sa.Index("ix_appointments_unerased_end", "end",
                 postgresql_where=sa.text("usager_erased_at IS NULL"),
                 sqlite_where=sa.text("usager_erased_at IS NULL")),
    )


@sa.event.listens_for(Appointment, "before_insert")
@sa.event.listens_for(Appointment, "before_update")
def _fold_usager(_mapper: Any, _connection: Any, target: Appointment) -> None:
    # At flush, so a booking, a correction or a test's row can never hold a stale text.
    target.usager_search = search_text(target.usager_first_name, target.usager_last_name,
                                       target.usager_phone)


class IdempotencyKey(Base):
    """A client's Idempotency-Key with the stored answer, scoped to the caller."""

    __tablename__ = "idempotency_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(sa.String(255))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(12))
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    __table_args__ = (
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),
    )


class AuditEntry(Base):
    """Who did what to what, when: an entry of the hash-chained audit trail.

    Never personal data: the usager's details appear as field names, not values. Write
    entries with ``visio.services.audit.record`` (or add one directly): the chain fields
    (``seq``, ``prev_hash``, ``hash``) and the request id are filled at flush.
    """

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(sa.String(40))
    # agent, staff, usager, admin or system: who acted, as the history names them.
    actor_kind: Mapped[str | None] = mapped_column(sa.String(12))
    appointment_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("appointments.id"), index=True
    )
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # What else the entry is about (user, site, staff, closure, feed, calendar ...).
    target_kind: Mapped[str | None] = mapped_column(sa.String(20))
    target_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # The site concerned, when there is one (a coordinator sees its départements').
    site_id: Mapped[str | None] = mapped_column(ID)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    # The hash chain (visio.domain.audit_chain): position, previous hash, own hash.
    seq: Mapped[int | None] = mapped_column(sa.BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64))
    hash: Mapped[str | None] = mapped_column(sa.String(64))


class AuditChain(Base):
    """The chain's head (one row, id 1): the last entry's ``seq`` and ``hash``.

    Appending locks it (FOR UPDATE on PostgreSQL; SQLite's writers are serialised by
    BEGIN IMMEDIATE), so concurrent writers never fork the chain.
    """

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    hash: Mapped[str] = mapped_column(sa.String(64))


class CallEventRow(Base):
    """Something that happened in an appointment's call (join, leave, connection, stats)."""

    __tablename__ = "call_events"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    appointment_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("appointments.id"), index=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(sa.String(30))
    peer_id: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[str] = mapped_column(sa.String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class CallOutcome(Base):
    """What an appointment's call came to, computed once from its call log."""

    __tablename__ = "call_outcomes"

    appointment_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("appointments.id"),
                                                primary_key=True)
    # Someone joined at all.
    attempted: Mapped[bool] = mapped_column(sa.Boolean)
    connected: Mapped[bool] = mapped_column(sa.Boolean)
    kiosk_joined: Mapped[bool] = mapped_column(sa.Boolean)
    operator_joined: Mapped[bool] = mapped_column(sa.Boolean)
    # From the second side's join to both sides connected.
    seconds_to_connect: Mapped[float | None] = mapped_column(sa.Float)
    # From both sides connected to the first leave or failure after it.
    duration_seconds: Mapped[float | None] = mapped_column(sa.Float)
    audio_only: Mapped[bool] = mapped_column(sa.Boolean)
    ended_by_failure: Mapped[bool] = mapped_column(sa.Boolean)
    computed_at: Mapped[datetime]


class OutboxRow(Base):
    """One message to send, written in the transaction of the booking change behind it."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    appointment_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("appointments.id"), index=True
    )
    appointment_version: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(24))
    channel: Mapped[str] = mapped_column(sa.String(8))
    # usager or staff
    audience: Mapped[str] = mapped_column(sa.String(8))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    language: Mapped[str] = mapped_column(sa.String(5))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(300))
    provider_ref: Mapped[str | None] = mapped_column(sa.String(200))
    # Claimed until this instant (or, after a temporary failure, not retried before it).
    lease_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'retired', 'skipped')", name="status"
        ),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="channel"),
        sa.Index("ix_outbox_status_due", "status", "due_at"),
        sa.Index("ix_outbox_recipient_finished", "recipient", "finished_at"),
        sa.Index("ix_outbox_finished_at", "finished_at"),
    )
