"""The closed sets of the domain: roles, appointment statuses, kinds of sites and operators."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What an account is for."""

    AGENT = "agent"  # a France Services agent, attached to sites
    STAFF = "staff"  # an operator's staff member, attached to a desk
    ADMIN = "admin"  # administers the directory and every account
    COORDINATOR = "coordinator"  # oversees the sites of some départements (figures)


class ActorKind(StrEnum):
    """Who changed an appointment, as its history and ``cancelled_by`` name them."""

    AGENT = "agent"
    STAFF = "staff"
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    USAGER = "usager"  # by the link of their messages
    CLOSURE = "closure"  # an administrator closed the site, the operator or the desk


class Status(StrEnum):
    """Where an appointment stands."""

    BOOKED = "booked"
    CANCELLED = "cancelled"
    DONE = "done"
    NO_SHOW = "no_show"


class SiteKind(StrEnum):
    FIXED = "fixed"
    ITINERANT = "itinerant"


class Country(StrEnum):
    FR = "FR"
    BE = "BE"


class OperatorKind(StrEnum):
    NATIONAL = "national"
    CROSS_BORDER = "cross_border"


class Language(StrEnum):
    """Languages an usager reads (messages and pages)."""

    FR = "fr"
    NL = "nl"
    EN = "en"


class SpokenLanguage(StrEnum):
    """Languages operator staff may speak in a call."""

    FR = "fr"
    NL = "nl"
    DE = "de"
    EN = "en"


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"
