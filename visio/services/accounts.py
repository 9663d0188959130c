"""Accounts: log in, bearer tokens, principals and their scope."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv6Address, ip_address, ip_network

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal, principal_of
from visio.db import Database
from visio.domain.kinds import Role
from visio.domain.messages import _
from visio.domain.territory import DEPARTEMENT_PATTERN
from visio.errors import Conflict, NotAuthenticated, NotFound, TooManyAttempts, Unprocessable
from visio.security import digest, hash_password, new_api_token, verify_password
from visio.services import audit
from visio.settings import Settings

ROLES = tuple(r.value for r in Role)
_DEPARTEMENT = re.compile(DEPARTEMENT_PATTERN)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """Failure budgets for logging in (the rule is in ``log_in``) and the token lifetime."""

    max_failures: int
    """Failures of one (account, address) pair inside the window."""
    window: timedelta
    token_ttl: timedelta
    address_max_failures: int = 20
    """Failures of one address across all accounts inside the window."""
    account_max_failures: int = 10
    """Failures on one account across all addresses inside the window."""
    remember: timedelta = timedelta(days=90)
    """How long an address that logged into an account stays known to that account."""
    ipv6_prefix: int = 64
    """IPv6 clients are counted by network of this length: one subscriber commonly holds
    a whole /64, and would otherwise have 2**64 fresh budgets."""

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        """The budgets set by the ``VISIO_LOGIN_*`` settings."""
        return cls(max_failures=settings.login_max_failures,
                   address_max_failures=settings.login_address_max_failures,
                   account_max_failures=settings.login_account_max_failures,
                   remember=timedelta(days=settings.login_remember_days),
                   window=timedelta(seconds=settings.login_window_seconds),
                   token_ttl=timedelta(seconds=settings.token_ttl_seconds),
                   ipv6_prefix=settings.login_ipv6_prefix)

    def counted_as(self, address: str) -> str:
        """The key failures and successes of ``address`` are counted under: an IPv4
        address itself, an IPv6 one's network (``2001:db8:1:2::/64``), else the text as
        given (``unknown``: every client a proxy hid, together)."""
        try:
            parsed = ip_address(address)
        except ValueError:
            return address
        if isinstance(parsed, IPv6Address) and self.ipv6_prefix < 128:
            return str(ip_network(f"{parsed}/{self.ipv6_prefix}", strict=False))
        return str(parsed)


# The table of migration 0003: addresses that logged into an account (by account key).
# Written as a lightweight table until visio/models.py declares it (LoginSuccess).
_successes = sa.table(
    "login_successes",
    sa.column("id", m.ID),
    sa.column("account_key", sa.String(64)),
    sa.column("address", sa.String(64)),
    sa.column("at", m.UTCDateTime()),
)


async def log_in(
    *,
    db: Database,
    hasher: PasswordHasher,
    dummy_hash: str,
    email: str,
    password: str,
    address: str,
    policy: LoginPolicy,
    now: datetime,
    replaces: str | None = None,
) -> IssuedToken:
    """Exchange e-mail and password for a bearer token, slowing password guessing.

    ``replaces`` is the token this browser held before (its session cookie): it is
    revoked by a successful login, so a session left behind on a shared kiosk or one
    fixed by someone else does not outlive the login that replaced it.

    Failures are counted inside ``policy.window`` by account key (the digest of the
    e-mail given, whether or not such an account exists) and by client address (an IPv6
    address by its network, ``policy.ipv6_prefix`` long: see ``LoginPolicy.counted_as``).
    An attempt is refused with 429 and Retry-After, before its password is checked, when:

    1. its (account, address) pair has ``max_failures`` failures;
    2. its address has ``address_max_failures`` failures across all accounts, unless that
       address logged into this account before (within ``policy.remember``);
    3. its account has ``account_max_failures`` failures across all addresses, and its
       address has failed on this account itself and never logged into it.

    Every refusal needs failures made from the refused address itself, so an attacker at
    address A can never make the right password fail from another address B; an address
    that never failed on the account, or that logged into it before, is held back only by
    its own pair's failures. Refused attempts are not counted. A success clears its
    pair's failures and makes its address known to the account.
    """
    account_key = digest(email.strip().lower())
    address = policy.counted_as(address)
    token: str | None = None
    expires_at: datetime | None = None
    async with db.write() as session:
        retry_after = await _refusal(
            session=session, account_key=account_key, address=address, policy=policy, now=now
        )
        user = await session.scalar(
            sa.select(m.User).where(m.User.email == email.strip().lower(), m.User.active)
        )
        if retry_after is not None:
            # Refused before the password is checked; the refusal is in the trail.
            _audit_login(session, user, now, "login.refused", "throttled")
        else:
            token, expires_at = await _check_password(
                session=session, hasher=hasher, dummy_hash=dummy_hash, user=user,
                password=password, account_key=account_key, address=address, policy=policy,
                now=now, replaces=replaces)
    if retry_after is not None:
        raise TooManyAttempts(
            _("Too many failed logins; wait before trying again."), retry_after=retry_after
        )
    if token is None or expires_at is None:
        raise NotAuthenticated(_("The e-mail address or the password is wrong."))
    return IssuedToken(access_token=token, expires_at=expires_at)


async def _check_password(
    *, session: AsyncSession, hasher: PasswordHasher, dummy_hash: str, user: m.User | None,
    password: str, account_key: str, address: str, policy: LoginPolicy, now: datetime,
    replaces: str | None,
) -> tuple[str | None, datetime | None]:
    """A new token and its expiry for the right password; (None, None) otherwise."""
    # Verify against a dummy hash for unknown accounts: same cost, nothing revealed.
    ok = verify_password(hasher, user.password_hash if user else dummy_hash, password)
    if user is None or not ok:
        session.add(m.LoginFailure(account_key=account_key, address=address, at=now))
        _audit_login(session, user, now, "login.refused",
                     "unknown_account" if user is None else "wrong_password")
        return None, None
    # Only this pair's failures: the owner logging in elsewhere must not hand an
    # attacker a fresh account budget.
    await session.execute(
        sa.delete(m.LoginFailure).where(m.LoginFailure.account_key == account_key,
                                        m.LoginFailure.address == address)
    )
    await session.execute(
        sa.delete(_successes).where(_successes.c.account_key == account_key,
                                    _successes.c.address == address)
    )
    await session.execute(sa.insert(_successes).values(
        id=m.new_id(), account_key=account_key, address=address, at=now))
    if replaces is not None:
        await session.execute(
            sa.update(m.ApiToken)
            .where(m.ApiToken.token_hash == digest(replaces),
                   m.ApiToken.revoked_at.is_(None))
            .values(revoked_at=now))
    token = new_api_token()
    expires_at = now + policy.token_ttl
    session.add(
        m.ApiToken(user_id=user.id, token_hash=digest(token), created_at=now,
                   expires_at=expires_at)
    )
    _audit_login(session, user, now, "login.succeeded", None)
    return token, expires_at


def _audit_login(session: AsyncSession, user: m.User | None, now: datetime, action: str,
                 reason: str | None) -> None:
    """A login in the trail: the account (if the e-mail named one), never the e-mail
    given or the address it came from."""
    actor = audit.Actor(user.role, user.id) if user is not None else audit.Actor("anonymous")
    audit.record(session, at=now, actor=actor, action=action, target_kind="user",
                 target_id=user.id if user is not None else None,
                 detail={"reason": reason} if reason else None)


async def _refusal(
    *, session: AsyncSession, account_key: str, address: str, policy: LoginPolicy,
    now: datetime,
) -> int | None:
    """Seconds before this (account, address) may try again, or None if it may try now."""
    since = now - policy.window
    failure = m.LoginFailure
    # Instants at which each budget that refuses this attempt stops refusing it.
    until: list[datetime] = []
    pair_times = (await session.scalars(
        sa.select(failure.at)
        .where(failure.account_key == account_key, failure.address == address,
               failure.at > since)
        .order_by(failure.at.desc()).limit(max(policy.max_failures, 1))
    )).all()
    if len(pair_times) >= policy.max_failures:
        until.append(pair_times[-1] + policy.window)
    known = await session.scalar(sa.select(sa.exists().where(
        _successes.c.account_key == account_key, _successes.c.address == address,
        _successes.c.at > now - policy.remember,
    )))
    if not known:
        address_until = await _budget_spent_until(
            session=session, where=failure.address == address, since=since,
            budget=policy.address_max_failures, window=policy.window,
        )
        if address_until is not None:
            until.append(address_until)
        if pair_times:
            account_until = await _budget_spent_until(
                session=session, where=failure.account_key == account_key, since=since,
                budget=policy.account_max_failures, window=policy.window,
            )
            if account_until is not None:
                # Lifted once the account is below budget or this address's failures age out.
                until.append(min(account_until, pair_times[0] + policy.window))
    if not until:
        return None
    return max(1, math.ceil((max(until) - now).total_seconds()))


async def _budget_spent_until(
    *, session: AsyncSession, where: sa.ColumnElement[bool], since: datetime, budget: int,
    window: timedelta,
) -> datetime | None:
    """When the failures matching ``where`` fall below ``budget``; None if they are below."""
    # Below budget once the budget-th newest failure leaves the window.
    at = await session.scalar(
        sa.select(m.LoginFailure.at).where(where, m.LoginFailure.at > since)
        .order_by(m.LoginFailure.at.desc()).offset(max(budget, 1) - 1).limit(1)
    )
    return None if at is None else at + window


async def purge_login_records(
    *, db: Database, window: timedelta, remember: timedelta, now: datetime
) -> int:
    """Delete failures older than the window and known addresses older than ``remember``."""
    # Addresses are personal data: keep them only while throttling needs them.
    async with db.write() as session:
        failures = await session.execute(
            sa.delete(m.LoginFailure).where(m.LoginFailure.at <= now - window)
        )
        successes = await session.execute(
            sa.delete(_successes).where(_successes.c.at <= now - remember)
        )
    return int(failures.rowcount or 0) + int(successes.rowcount or 0)  # type: ignore[attr-defined]


async def authenticate(*, db: Database, token: str, now: datetime) -> Principal:
    """The principal behind a bearer token; NotAuthenticated if unknown, expired or revoked."""
    async with db.read() as session:
        row = (await session.execute(
            sa.select(m.User, m.ApiToken.expires_at)
            .join(m.ApiToken, m.ApiToken.user_id == m.User.id)
            .where(m.ApiToken.token_hash == digest(token), m.ApiToken.revoked_at.is_(None))
        )).one_or_none()
        if row is None:
            raise NotAuthenticated(_("The bearer token is unknown or has been revoked."))
        user, expires_at = row
        if expires_at <= now:
            raise NotAuthenticated(_("The bearer token has expired; log in again."))
        if not user.active:
            raise NotAuthenticated(_("This account is disabled."))
        return await _principal(session=session, user=user)


async def _principal(*, session: AsyncSession, user: m.User) -> Principal:
    site_ids: frozenset[str] = frozenset()
    desk_id = operator_id = None
    departements: frozenset[str] = frozenset()
    if user.role == Role.AGENT:
        site_ids = frozenset((await session.scalars(
            sa.select(m.UserSite.site_id).where(m.UserSite.user_id == user.id)
        )).all())
    if user.role == Role.COORDINATOR:
        departements = frozenset((await session.scalars(
            sa.select(m.UserDepartement.departement)
            .where(m.UserDepartement.user_id == user.id))).all())
        site_ids = frozenset((await session.scalars(
            sa.select(m.Site.id).where(m.Site.departement.in_(sorted(departements))))).all())
    if user.staff_id is not None:
        row = (await session.execute(
            sa.select(m.Desk.id, m.Desk.operator_id)
            .join(m.StaffMember, m.StaffMember.desk_id == m.Desk.id)
            .where(m.StaffMember.id == user.staff_id)
        )).one()
        desk_id, operator_id = row
    return principal_of(user_id=user.id, role=user.role, site_ids=site_ids,
                        staff_id=user.staff_id, desk_id=desk_id, operator_id=operator_id,
                        departements=departements)


async def log_out(*, db: Database, token: str, now: datetime) -> None:
    """Revoke a live bearer token; NotAuthenticated if there is none to revoke."""
    async with db.write() as session:
        revoked = await session.scalar(
            sa.update(m.ApiToken)
            .where(m.ApiToken.token_hash == digest(token), m.ApiToken.revoked_at.is_(None),
                   m.ApiToken.expires_at > now)
            .values(revoked_at=now)
            .returning(m.ApiToken.id)
        )
    if revoked is None:
        raise NotAuthenticated(_("The bearer token is unknown, expired or already revoked."))


@dataclass(frozen=True, slots=True)
class UserSummary:
    id: str
    email: str
    display_name: str
    role: str
    site_ids: tuple[str, ...]
    staff_id: str | None
    desk_id: str | None
    departements: tuple[str, ...] = ()


def _departements(values: Sequence[str]) -> list[str]:
    """A coordinator's départements: INSEE codes, upper case, each once; at least one."""
    departements = sorted({d.strip().upper() for d in values})
    if not departements:
        raise Unprocessable(_("A coordinator must be given at least one département."))
    if any(not _DEPARTEMENT.fullmatch(d) for d in departements):
        raise Unprocessable(_("A département is an INSEE code such as 59, 2A or 971."))
    return departements


async def create_user(
    *,
    db: Database,
    hasher: PasswordHasher,
    email: str,
    password: str,
    role: str,
    display_name: str,
    site_ids: Sequence[str] = (),
    desk_id: str | None = None,
    staff_id: str | None = None,
    departements: Sequence[str] = (),
    actor: audit.Actor = audit.THE_SYSTEM,
) -> UserSummary:
    """Create an account: agents need sites, staff a desk (a staff member is created),
    coordinators départements."""
    email = email.strip().lower()
    if role not in ROLES:
        raise Unprocessable(_("Unknown role {role}; use one of {value}.", role=role,
                             value=", ".join(ROLES)))
    if "@" not in email or len(email) > 254:
        raise Unprocessable(_("The e-mail address is not valid."))
    if len(password) < 12:
        raise Unprocessable(_("The password must have at least 12 characters."))
    if role == Role.AGENT and not site_ids:
        raise Unprocessable(_("An agent must be attached to at least one site."))
    if role == Role.STAFF and desk_id is None and staff_id is None:
        raise Unprocessable(_("A staff account must be attached to a desk."))
    departements = _departements(departements) if role == Role.COORDINATOR else []
    password_hash = hash_password(hasher, password)
    try:
        async with db.write() as session:
            for site_id in site_ids:
                if await session.get(m.Site, site_id) is None:
                    raise NotFound(_("There is no site {site_id}.", site_id=site_id))
            if role == Role.STAFF and staff_id is None:
                assert desk_id is not None
                if await session.get(m.Desk, desk_id) is None:
                    raise NotFound(_("There is no desk {desk_id}.", desk_id=desk_id))
                staff = m.StaffMember(desk_id=desk_id, display_name=display_name,
                                      languages=[], active=True)
                session.add(staff)
                await session.flush()
                staff_id = staff.id
            elif staff_id is not None:
                staff_row = await session.get(m.StaffMember, staff_id)
                if staff_row is None:
                    raise NotFound(_("There is no staff member {staff_id}.", staff_id=staff_id))
                desk_id = staff_row.desk_id
            user = m.User(email=email, display_name=display_name, password_hash=password_hash,
                          role=role, staff_id=staff_id if role == Role.STAFF else None,
                          active=True)
            session.add(user)
            await session.flush()
            for site_id in site_ids if role == Role.AGENT else ():
                session.add(m.UserSite(user_id=user.id, site_id=site_id))
            for departement in departements:
                session.add(m.UserDepartement(user_id=user.id, departement=departement))
            audit.record(session, actor=actor, action="account.created",
                         target_kind="user", target_id=user.id,
                         fields=("email", "display_name", "password", "role")
                         + (("sites",) if role == Role.AGENT else ())
                         + (("staff",) if role == Role.STAFF else ()),
                         detail={"role": role,
                                 "sites": sorted(site_ids) if role == Role.AGENT else [],
                                 "staff_id": user.staff_id})
    except IntegrityError as err:
        raise Conflict(_("An account with the e-mail address {email} exists already.",
                             email=email)) from err
    return UserSummary(id=user.id, email=email, display_name=display_name, role=role,
                       site_ids=tuple(site_ids) if role == Role.AGENT else (),
                       staff_id=user.staff_id, desk_id=desk_id if role == Role.STAFF else None,
                       departements=tuple(departements))


async def grant(
    *,
    db: Database,
    user_id: str,
    site_ids: Sequence[str] = (),
    desk_id: str | None = None,
    staff_id: str | None = None,
    departements: Sequence[str] = (),
    actor: audit.Actor = audit.THE_SYSTEM,
) -> UserSummary:
    """Give an account what its role works with, replacing what it had: an agent its
    sites, a staff account a staff member (an existing one, or a new one at a desk), a
    coordinator its départements. A ProConnect account provisioned with nothing gets
    its sites or desk so."""
    async with db.write() as session:
        user = await session.get(m.User, user_id)
        if user is None:
            raise NotFound(_("There is no account {user_id}.", user_id=user_id))
        role = Role(user.role)
        if role is Role.AGENT:
            if not site_ids:
                raise Unprocessable(_("An agent must be attached to at least one site."))
            for site_id in site_ids:
                if await session.get(m.Site, site_id) is None:
                    raise NotFound(_("There is no site {site_id}.", site_id=site_id))
            await session.execute(sa.delete(m.UserSite).where(m.UserSite.user_id == user.id))
            session.add_all(m.UserSite(user_id=user.id, site_id=site_id)
                            for site_id in sorted(set(site_ids)))
            fields: tuple[str, ...] = ("sites",)
        elif role is Role.STAFF:
            if staff_id is not None:
                staff_row = await session.get(m.StaffMember, staff_id)
                if staff_row is None:
                    raise NotFound(_("There is no staff member {staff_id}.",
                                     staff_id=staff_id))
            elif desk_id is not None:
                if await session.get(m.Desk, desk_id) is None:
                    raise NotFound(_("There is no desk {desk_id}.", desk_id=desk_id))
                staff_row = m.StaffMember(desk_id=desk_id, display_name=user.display_name,
                                          languages=[], active=True)
                session.add(staff_row)
                await session.flush()
            else:
                raise Unprocessable(_("A staff account must be attached to a desk."))
            user.staff_id = staff_row.id
            fields = ("staff",)
        elif role is Role.COORDINATOR:
            wanted = _departements(departements)
            await session.execute(sa.delete(m.UserDepartement).where(
                m.UserDepartement.user_id == user.id))
            session.add_all(m.UserDepartement(user_id=user.id, departement=d) for d in wanted)
            fields = ("departements",)
        else:
            raise Unprocessable(_("An administrator sees everything: there is nothing to "
                                  "grant."))
        audit.record(session, actor=actor, action="account.granted", target_kind="user",
                     target_id=user.id, fields=fields,
                     detail={"sites": sorted(set(site_ids)) if role is Role.AGENT else [],
                             "staff_id": user.staff_id})
        sites = (await session.scalars(sa.select(m.UserSite.site_id).where(
            m.UserSite.user_id == user.id).order_by(m.UserSite.site_id))).all()
        covered = (await session.scalars(sa.select(m.UserDepartement.departement).where(
            m.UserDepartement.user_id == user.id).order_by(
            m.UserDepartement.departement))).all()
        desk_id = (await session.scalar(sa.select(m.StaffMember.desk_id).where(
            m.StaffMember.id == user.staff_id)) if user.staff_id else None)
        return UserSummary(id=user.id, email=user.email, display_name=user.display_name,
                           role=user.role, site_ids=tuple(sites), staff_id=user.staff_id,
                           desk_id=desk_id, departements=tuple(covered))


async def list_users(*, db: Database) -> list[UserSummary]:
    """Every account, with its sites or desk."""
    async with db.read() as session:
        users = (await session.scalars(sa.select(m.User).order_by(m.User.email))).all()
        links = (await session.execute(sa.select(m.UserSite.user_id, m.UserSite.site_id))).all()
        covered = (await session.execute(sa.select(m.UserDepartement.user_id,
                                                   m.UserDepartement.departement))).all()
        desks = {staff_id: desk_id for staff_id, desk_id in (await session.execute(
            sa.select(m.StaffMember.id, m.StaffMember.desk_id))).all()}
    sites: dict[str, list[str]] = {}
    for user_id, site_id in links:
        sites.setdefault(user_id, []).append(site_id)
    departements: dict[str, list[str]] = {}
    for user_id, departement in covered:
        departements.setdefault(user_id, []).append(departement)
    return [
        UserSummary(id=u.id, email=u.email, display_name=u.display_name, role=u.role,
                    site_ids=tuple(sorted(sites.get(u.id, []))), staff_id=u.staff_id,
                    desk_id=desks.get(u.staff_id) if u.staff_id else None,
                    departements=tuple(sorted(departements.get(u.id, []))))
        for u in users
    ]
