"""Every request body, query and response body of /api/v1, declared once.

These msgspec Structs decode and validate requests, serialise responses and generate the
OpenAPI document (``visio.api.openapi``). Request structs refuse unknown fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from msgspec import UNSET, Meta, Struct, UnsetType, field

from visio.contract.fields import (
    Address,
    CalendarUrl,
    Code,
    Commune,
    CommuneCode,
    Cursor,
    Day,
    Departement,
    Email,
    HourMinute,
    Id,
    Instant,
    Name,
    NewPassword,
    Note,
    Password,
    Phone,
    Reason,
    SearchText,
    Timezone,
    UsagerName,
    Version,
)
from visio.domain.contact import PhoneType
from visio.domain.kinds import (
    Country,
    Language,
    OperatorKind,
    Role,
    SiteKind,
    SpokenLanguage,
    Status,
    Weekday,
)

T = TypeVar("T")


class Request(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of request bodies and queries: unknown fields are refused."""


class Resource(Struct, frozen=True, kw_only=True):
    """Base of response bodies."""


class Page(Resource, Generic[T], frozen=True, kw_only=True):
    """A list: its items, and the cursor of the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None = None


# ---------------------------------------------------------------- auth


class Login(Request, frozen=True, kw_only=True):
    email: Email
    password: Password


class Token(Resource, frozen=True, kw_only=True):
    access_token: str
    token_type: Literal["Bearer"]
    expires_at: Instant


# ---------------------------------------------------------------- directory


class Range(Request, frozen=True, kw_only=True):
    """A wall-clock range in the place's zone; opens before closes."""

    opens: HourMinute
    closes: HourMinute


OpeningHours = dict[Weekday, Annotated[list[Range], Meta(max_length=6)]]


class SiteCreate(Request, frozen=True, kw_only=True):
    name: Name
    kind: SiteKind
    commune: Commune
    address: Address
    timezone: Timezone = "Europe/Paris"
    booths: Annotated[int, Meta(ge=1, le=50)] = 1
    opening_hours: OpeningHours = field(default_factory=dict)
    departement: Departement | None = None
    commune_insee: CommuneCode | None = None
    phone: Phone | None = None


class SiteUpdate(Request, frozen=True, kw_only=True):
    name: Name | None = None
    commune: Commune | None = None
    address: Address | None = None
    timezone: Timezone | None = None
    booths: Annotated[int, Meta(ge=1, le=50)] | None = None
    opening_hours: OpeningHours | None = None
    departement: Departement | None = None
    commune_insee: CommuneCode | None = None
    phone: Phone | None = None


class StopCreate(Request, frozen=True, kw_only=True):
    date: Day
    commune: Commune
    place: Address
    hours: Annotated[list[Range], Meta(min_length=1, max_length=4)]
    commune_insee: CommuneCode | None = None


class StopsCreate(Request, frozen=True, kw_only=True):
    stops: Annotated[list[StopCreate], Meta(min_length=1, max_length=400)]


class Stop(Resource, frozen=True, kw_only=True):
    id: str
    date: Day
    commune: str
    place: str
    opens: str
    closes: str
    hours: list[Range]
    commune_insee: str | None = None


class Site(Resource, frozen=True, kw_only=True):
    id: str
    name: str
    kind: SiteKind
    commune: str
    address: str
    timezone: str
    country: Country
    booths: int
    opening_hours: dict[Weekday, list[Range]]
    stops: list[Stop]
    departement: str | None = None
    commune_insee: str | None = None
    phone: str | None = None


Languages = Annotated[list[SpokenLanguage], Meta(min_length=1, max_length=4)]


class OperatorCreate(Request, frozen=True, kw_only=True):
    name: Name
    code: Code
    country: Country
    kind: OperatorKind
    languages: Languages
    timezone: Timezone


class OperatorUpdate(Request, frozen=True, kw_only=True):
    name: Name | None = None
    languages: Languages | None = None
    timezone: Timezone | None = None


class OperatorQuery(Request, frozen=True, kw_only=True):
    country: Country | None = None
    theme: Code | None = None


class Operator(Resource, frozen=True, kw_only=True):
    id: str
    name: str
    code: str
    country: Country
    kind: OperatorKind
    languages: list[str]
    timezone: str
    themes: list[str]


class DeskCreate(Request, frozen=True, kw_only=True):
    name: Name


class Desk(Resource, frozen=True, kw_only=True):
    id: str
    operator_id: str
    name: str


class TerritoryUpdate(Request, frozen=True, kw_only=True):
    """The départements a desk serves, optionally narrowed to some of their communes."""

    departements: Annotated[list[Departement], Meta(min_length=1, max_length=101)]
    communes: Annotated[list[CommuneCode], Meta(max_length=2000)] = field(
        default_factory=list)


class Territory(Resource, frozen=True, kw_only=True):
    desk_id: str
    departements: list[str]
    communes: list[str]


class OperatorDetail(Operator, frozen=True, kw_only=True):
    desks: list[Desk] = field(default_factory=list)


class Theme(Resource, frozen=True, kw_only=True):
    id: str
    code: str
    label_fr: str
    label_nl: str


Minutes = Annotated[int, Meta(ge=0, le=60 * 24 * 30)]


class ServiceCreate(Request, frozen=True, kw_only=True):
    operator_id: Id
    theme: Code
    duration_minutes: Annotated[int, Meta(ge=5, le=480)] = 30
    buffer_minutes: Annotated[int, Meta(ge=0, le=240)] = 0
    languages: Languages = field(default_factory=lambda: [SpokenLanguage.FR])
    notice_minutes: Minutes = 120
    horizon_days: Annotated[int, Meta(ge=1, le=366)] = 56


class ServiceUpdate(Request, frozen=True, kw_only=True):
    duration_minutes: Annotated[int, Meta(ge=5, le=480)] | None = None
    buffer_minutes: Annotated[int, Meta(ge=0, le=240)] | None = None
    languages: Languages | None = None
    notice_minutes: Minutes | None = None
    horizon_days: Annotated[int, Meta(ge=1, le=366)] | None = None


class ServiceQuery(Request, frozen=True, kw_only=True):
    operator_id: Id | None = None
    theme: Code | None = None


class Service(Resource, frozen=True, kw_only=True):
    id: str
    operator_id: str
    theme: str
    duration_minutes: int
    buffer_minutes: int
    languages: list[str]
    notice_minutes: int
    horizon_days: int


class ClosureCreate(Request, frozen=True, kw_only=True):
    """Close exactly one of a site, an operator or a desk on a date."""

    date: Day
    reason: Reason | None = None
    site_id: Id | None = None
    operator_id: Id | None = None
    desk_id: Id | None = None
    cancel_appointments: bool = False


class Closure(Resource, frozen=True, kw_only=True):
    id: str
    date: Day
    reason: str
    site_id: str | None
    operator_id: str | None
    desk_id: str | None
    cancelled_appointment_ids: list[str] = field(default_factory=list)


class UserCreate(Request, frozen=True, kw_only=True):
    email: Email
    password: NewPassword
    role: Role
    display_name: Name
    site_ids: Annotated[list[Id], Meta(max_length=50)] = field(default_factory=list)
    desk_id: Id | None = None
    departements: Annotated[list[Departement], Meta(max_length=110, description=(
        "A coordinator's départements (INSEE codes)."))] = field(default_factory=list)


class UserGrant(Request, frozen=True, kw_only=True):
    """What an account works with, replacing what it had: an agent's sites, a staff
    account's staff member (or a desk, where a staff member is made), a coordinator's
    départements."""

    site_ids: Annotated[list[Id], Meta(max_length=50)] = field(default_factory=list)
    desk_id: Id | None = None
    staff_id: Id | None = None
    departements: Annotated[list[Departement], Meta(max_length=110)] = field(
        default_factory=list)


class User(Resource, frozen=True, kw_only=True):
    id: str
    email: str
    display_name: str
    role: Role
    site_ids: list[str]
    staff_id: str | None
    desk_id: str | None
    departements: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- availability


class Rule(Request, frozen=True, kw_only=True):
    weekday: Annotated[int, Meta(ge=0, le=6, description="0 is Monday.")]
    opens: HourMinute
    closes: HourMinute
    valid_from: Day | None = None
    valid_until: Day | None = None


class DateOverride(Request, frozen=True, kw_only=True):
    """The ranges of one date; an empty list closes the day."""

    date: Day
    ranges: Annotated[list[Range], Meta(max_length=6)]


class Absence(Request, frozen=True, kw_only=True):
    start: Instant
    end: Instant
    reason: Reason | None = None


class AvailabilityUpdate(Request, frozen=True, kw_only=True):
    rules: Annotated[list[Rule], Meta(max_length=100)]
    overrides: Annotated[list[DateOverride], Meta(max_length=400)] = field(default_factory=list)
    absences: Annotated[list[Absence], Meta(max_length=400)] = field(default_factory=list)
    #: Save even though booked appointments fall in a new absence or closed day: they are
    #: then flagged for an agent to rebook (without it: 409 listing them, nothing saved).
    confirm: bool = False


class Availability(Resource, frozen=True, kw_only=True):
    staff_id: str
    timezone: str
    rules: list[Rule]
    overrides: list[DateOverride]
    absences: list[Absence]


# ---------------------------------------------------------------- slots and appointments


class SlotQuery(Request, frozen=True, kw_only=True):
    site_id: Id
    theme: Code
    from_: Instant = field(name="from")
    to: Instant
    operator_id: Id | None = None
    language: Language | None = None
    stop_id: Id | None = None
    staff_id: Id | None = None


class Slot(Resource, frozen=True, kw_only=True):
    start: Instant
    end: Instant
    operator_id: str
    desk_id: str
    staff_id: str
    service_id: str
    stop_id: str | None


class UsagerIn(Request, frozen=True, kw_only=True):
    first_name: UsagerName
    last_name: UsagerName
    phone: Phone | None = None
    phone_country: Country | None = None
    email: Email | None = None
    language: Language
    consent: bool = False


class Booking(Request, frozen=True, kw_only=True):
    """Give ``service_id``, or ``operator_id`` and ``theme``."""

    site_id: Id
    start: Instant
    usager: UsagerIn
    service_id: Id | None = None
    operator_id: Id | None = None
    theme: Code | None = None
    stop_id: Id | None = None
    staff_id: Id | None = None
    note: Note | None = None
    #: The start of the first slot the search offered before this one was chosen (the
    #: figures' delay to the first free slot); ignored if later than ``start``.
    first_offered: Instant | None = None


class Usager(Resource, frozen=True, kw_only=True):
    first_name: str
    last_name: str
    phone: str | None
    phone_type: PhoneType | None
    email: str | None
    language: Language
    consent: bool


class Appointment(Resource, frozen=True, kw_only=True):
    id: str
    status: Status
    start: Instant
    end: Instant
    site_id: str
    stop_id: str | None
    booth: int
    operator_id: str
    desk_id: str
    staff_id: str
    service_id: str
    theme: str
    usager: Usager
    version: Version
    created_at: Instant
    updated_at: Instant
    cancel_reason: str | None
    #: Since when an absence or closed day of its staff member covers it (an agent must
    #: move or cancel it); null when nothing is to do.
    to_rebook_since: Instant | None = None
    note: str | None = None


class AppointmentQuery(Request, frozen=True, kw_only=True):
    from_: Instant | None = field(default=None, name="from")
    to: Instant | None = None
    site_id: Id | None = None
    operator_id: Id | None = None
    status: Status | None = None
    q: SearchText | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Meta(ge=1, le=200)] = 50


class UsagerCorrection(Request, frozen=True, kw_only=True):
    """The usager's details to correct, and the note for the operator; a field left out
    stays as it is, ``null`` removes a phone, an e-mail or the note."""

    first_name: UsagerName | UnsetType = UNSET
    last_name: UsagerName | UnsetType = UNSET
    phone: Phone | UnsetType | None = UNSET
    email: Email | UnsetType | None = UNSET
    language: Language | UnsetType = UNSET
    consent: bool | UnsetType = UNSET
    note: Note | UnsetType | None = UNSET


class Cancellation(Request, frozen=True, kw_only=True):
    reason: Reason


class Rescheduling(Request, frozen=True, kw_only=True):
    start: Instant
    staff_id: Id | None = None


# ---------------------------------------------------------------- calls


class IceServer(Resource, frozen=True, kw_only=True, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class JoinGrant(Resource, frozen=True, kw_only=True):
    signaling_url: str
    token: str
    not_before: Instant
    expires_at: Instant
    role: Literal["kiosk", "operator"]
    peer_id: str
    ice_servers: list[IceServer]


class TestCall(Resource, frozen=True, kw_only=True):
    echo_url: str
    token: str
    expires_at: Instant
    ice_servers: list[IceServer]


class CallLogQuery(Request, frozen=True, kw_only=True):
    cursor: Cursor | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 100


class CallSummary(Resource, frozen=True, kw_only=True):
    kiosk_joined: bool
    operator_joined: bool
    connected: bool


class CallEvent(Resource, frozen=True, kw_only=True):
    at: Instant
    kind: str
    peer_id: str | None
    role: str | None
    detail: dict[str, str | int | float | bool | None]


class CallLog(Resource, frozen=True, kw_only=True):
    appointment_id: str
    summary: CallSummary
    items: list[CallEvent]
    next_cursor: str | None = None


# ---------------------------------------------------------------- calendars


class FeedCreate(Request, frozen=True, kw_only=True):
    """A new agenda feed: of a staff member, a desk or a site."""

    scope: Literal["staff", "desk", "site"]
    id: Id


class Feed(Resource, frozen=True, kw_only=True):
    """An agenda feed, without its address (its token is shown only at creation)."""

    id: Id
    scope: Literal["staff", "desk", "site"]
    target_id: Id
    language: Language
    created_at: Instant


class FeedCreated(Feed, frozen=True, kw_only=True):
    """A new agenda feed with its secret address: shown this once, never again."""

    url: str


class CalendarImport(Request, frozen=True, kw_only=True):
    """A staff member's own calendar to read busy time from."""

    url: CalendarUrl
    username: Name | None = None
    password: Password | None = None


class ImportedCalendar(Resource, frozen=True, kw_only=True):
    """An imported calendar's state; never its credentials."""

    id: Id
    staff_id: Id
    url: str
    has_credentials: bool
    status: Literal["pending", "ok", "error"]
    created_at: Instant
    last_attempt_at: Instant | None
    last_success_at: Instant | None
    last_error: str | None
    busy_periods: int


# ---------------------------------------------------------------- problems


class Problem(Resource, frozen=True, kw_only=True):
    """RFC 9457 problem details, in the caller's language (see Content-Language)."""

    type: str
    title: str
    status: int
    detail: str
    reason: str | None = None
    field: str | None = None
    alternatives: list[Slot] | None = None
    appointments: list[str] | None = None
    code: str | None = None


# ---------------------------------------------------------------- notifications


class Notification(Resource, frozen=True, kw_only=True):
    """One message of an appointment and its outcome (pending, sent, failed, retired,
    skipped), so the agent can phone an usager whose reminder failed."""

    id: str
    appointment_version: int
    kind: Literal["confirmation", "reminder", "short_reminder", "rescheduled", "cancelled",
                  "staff_request", "staff_cancel"]
    channel: Literal["email", "sms"]
    audience: Literal["usager", "staff"]
    recipient: str
    language: str
    due_at: Instant
    status: Literal["pending", "sent", "failed", "retired", "skipped"]
    attempts: int
    last_error: str | None
    provider_reference: str | None
    finished_at: Instant | None


class Notifications(Resource, frozen=True, kw_only=True):
    appointment_id: str
    items: list[Notification]


# ---------------------------------------------------------------- figures

GROUP_NAMES = "site|operator|theme|departement|month|week"


class FiguresQuery(Request, frozen=True, kw_only=True):
    """A period of days (both included, at most 366) and the groups, comma-separated."""

    from_: Day = field(name="from")
    to: Day
    group_by: Annotated[str, Meta(
        pattern=f"^({GROUP_NAMES})(,({GROUP_NAMES})){{0,5}}$",
        description="One or more of site, operator, theme, departement, month, week, "
                    "separated by commas.")] = "site"
    format: Literal["json", "csv"] | None = None
    sep: Literal[",", ";"] | None = None


class ExportQuery(Request, frozen=True, kw_only=True):
    """A period of days (both included, at most 93)."""

    from_: Day = field(name="from")
    to: Day
    format: Literal["json", "csv"] | None = None
    sep: Literal[",", ";"] | None = None


class FigureRow(Resource, frozen=True, kw_only=True):
    """One group: its keys and labels by group name, then its counts, rates (0..1),
    medians and 90th percentiles (null where nothing was measured)."""

    keys: dict[str, str]
    labels: dict[str, str]
    booked: int
    cancelled: int
    cancelled_by_usager: int
    cancelled_by_agent: int
    cancelled_by_staff: int
    cancelled_by_admin: int
    cancelled_by_closure: int
    rescheduled: int
    done: int
    no_show: int
    open: int
    done_rate: float | None
    no_show_rate: float | None
    cancelled_rate: float | None
    calls_attempted: int
    calls_connected: int
    connection_rate: float | None
    calls_failed: int
    kiosk_never_joined: int
    operator_never_joined: int
    median_seconds_to_connect: float | None
    median_call_seconds: float | None
    audio_only_share: float | None
    median_delay_hours: float | None
    p90_delay_hours: float | None
    median_offered_delay_hours: float | None
    p90_offered_delay_hours: float | None


class Figures(Resource, frozen=True, kw_only=True):
    from_: Day = field(name="from")
    to: Day
    group_by: list[str]
    items: list[FigureRow]


class AppointmentFigures(Resource, frozen=True, kw_only=True):
    """One appointment without personal data: where, who, when, what came of it."""

    id: str
    site_id: str
    operator_id: str
    desk_id: str
    theme: str
    departement: str
    start: Instant
    end: Instant
    booked_at: Instant
    first_offered_start: Instant | None
    status: Status
    cancelled_by: str | None
    reschedule_count: int
    call_attempted: bool | None
    call_connected: bool | None
    kiosk_joined: bool | None
    operator_joined: bool | None
    seconds_to_connect: float | None
    call_seconds: float | None
    audio_only: bool | None
    ended_by_failure: bool | None


class OutcomeCorrection(Request, frozen=True, kw_only=True):
    """Set or correct the outcome, within 7 days of the appointment, with a reason."""

    outcome: Literal["done", "no_show"]
    reason: Reason
# ---------------------------------------------------------------- audit trail


class AuditQuery(Request, frozen=True, kw_only=True):
    """Which audit entries: a period, who acted, on what; a page of them."""

    from_: Instant | None = field(default=None, name="from")
    to: Instant | None = None
    # An account id, or "system" or "usager".
    actor: Id | None = None
    # An appointment's id, or any other target's (site, user, closure, feed ...).
    target: Id | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 100
    # CSV only: the separator ("," by default; ";" for spreadsheets set up in French).
    sep: Literal[",", ";"] = ","


class AuditEntry(Resource, frozen=True, kw_only=True):
    """One entry of the audit trail: who, what, when, on what; never personal data."""

    seq: int
    id: str
    at: Instant
    actor_id: str | None
    # agent, staff, admin, coordinator (an account and its role), usager (by their
    # link), system, or anonymous (a login naming no account).
    actor_kind: str | None
    actor_name: str | None
    action: str
    appointment_id: str | None
    target_kind: str | None
    target_id: str | None
    site_id: str | None
    request_id: str | None
    # The names of the fields changed, never their values.
    fields: list[str]
    detail: dict[str, Any]
    hash: str
WebhookEvent = Literal["appointment.booked", "appointment.rescheduled",
                       "appointment.cancelled", "appointment.usager_updated",
                       "appointment.outcome", "call.connected"]


class WebhookCreate(Request, frozen=True, kw_only=True):
    """An operator's endpoint: where to post, and which events."""

    url: CalendarUrl
    events: Annotated[list[WebhookEvent], Meta(min_length=1, max_length=6)]


class WebhookEndpoint(Resource, frozen=True, kw_only=True):
    """An endpoint's state; never its secret."""

    id: Id
    operator_id: Id
    url: str
    events: list[str]
    status: Literal["active", "disabled"]
    #: gone (the receiver answered 410) or failing (a day without a success).
    disabled_reason: str | None
    disabled_at: Instant | None
    #: Since when deliveries fail without a success (null: none failing).
    failing_since: Instant | None
    created_at: Instant


class WebhookSecret(WebhookEndpoint, frozen=True, kw_only=True):
    """An endpoint with its signing secret (``whsec_``…): shown this once, never again."""

    secret: str


class WebhookAttempt(Resource, frozen=True, kw_only=True):
    """One attempt to deliver an event: its answer and how long it took."""

    id: Id
    event_id: str
    event_type: str
    appointment_id: str | None
    appointment_version: int
    at: Instant
    status_code: int | None
    latency_ms: int
    error: str | None
    delivery_status: Literal["pending", "delivered", "abandoned"]


class WebhookLog(Resource, frozen=True, kw_only=True):
    """An endpoint and its latest attempts, newest first."""

    endpoint: WebhookEndpoint
    attempts: list[WebhookAttempt]
