"""ProConnect (OpenID Connect) sign-in for agents and staff.

Authorization code flow with ``state``, ``nonce`` and PKCE (S256). The ID token is
verified by joserfc (never hand-written JOSE): its signature against the provider's JWKS
(RS256 or ES256; the key set is cached and fetched again when a token names a key it
does not hold, so the provider may rotate), then ``iss``, ``aud``, ``exp``, ``iat``,
``nonce`` and, when accepted values are set, ``acr``. Userinfo is read as JSON or as a
signed JWT (ProConnect signs it), checked the same way, and must name the same ``sub``.

Accounts: the identity signs into the active account with the same e-mail (any case),
which is then linked by ``sub``; later sign-ins find it by ``sub``. Nobody gets an
account by signing in unless the e-mail's domain or the SIRET is listed for
provisioning, and then only as what the listing says (an agent with no site, or staff
with no desk) until an administrator grants one. Every sign-in and every refusal
goes to the audit trail (no personal data: the reason and the account id only).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import sqlalchemy as sa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from visio import models as m
from visio.clock import utcnow
from visio.db import Database
from visio.domain.kinds import Role
from visio.domain.messages import N_, Message, _
from visio.errors import VisioError
from visio.security import digest, new_api_token
from visio.services import audit
from visio.services.passwords import NO_PASSWORD
from visio.settings import Settings

ALGORITHMS = ["RS256", "ES256"]
TIMEOUT = aiohttp.ClientTimeout(total=10)
DISCOVERY_TTL = 3600.0


class SignInRefused(VisioError):
    """A ProConnect sign-in that did not open a session; ``reason`` is stable."""

    status = 401
    title = N_("Sign-in refused")
    slug = "sign-in-refused"

    def __init__(self, detail: Message, *, reason: str, status: int = 401) -> None:
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason
        self.status = status  # type: ignore[misc]


def _refused(reason: str) -> SignInRefused:
    messages = {
        "state": _("This sign-in did not start here or was already used; start again."),
        "code": _("ProConnect did not accept this sign-in (it may have been used "
                  "already); start again."),
        "token": _("ProConnect's answer could not be verified; start again, and tell "
                   "your administrator if it goes on."),
        "acr": _("This sign-in is not strong enough for visio; sign in with ProConnect "
                 "using a stronger method."),
        "unreachable": _("ProConnect cannot be reached now; try again in a moment, or "
                         "log in with your password."),
        "no_account": _("No visio account has this e-mail address; ask your "
                        "administrator for one."),
        "disabled": _("This account is disabled."),
        "denied": _("The sign-in was cancelled at ProConnect."),
    }
    return SignInRefused(messages[reason], reason=reason,
                         status=502 if reason == "unreachable" else 401)


@dataclass(frozen=True, slots=True)
class Config:
    """What the ``VISIO_PROCONNECT_*`` settings give; None when ProConnect is off."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: tuple[str, ...]
    acr_values: tuple[str, ...]
    #: E-mail domain (lower case) or SIRET → the role provisioning gives (agent or staff).
    provision_domains: Mapping[str, Role]
    provision_sirets: Mapping[str, Role]
    post_logout_uri: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Config | None:
        """The configuration, or None without an issuer and a client id."""
        if not (settings.proconnect_issuer and settings.proconnect_client_id):
            return None
        return cls(issuer=settings.proconnect_issuer,
                   client_id=settings.proconnect_client_id,
                   client_secret=settings.proconnect_client_secret,
                   redirect_uri=settings.proconnect_redirect_uri
                   or f"{settings.base_url}/login/proconnect/callback",
                   scopes=settings.proconnect_scopes, acr_values=settings.proconnect_acr_values,
                   provision_domains={key.lower(): role for key, role in _provisions(
                       settings.proconnect_provision_domains)},
                   provision_sirets=dict(_provisions(settings.proconnect_provision_sirets)),
                   post_logout_uri=f"{settings.base_url}/login")


def _provisions(entries: tuple[str, ...]) -> list[tuple[str, Role]]:
    """``key`` or ``key=role`` entries (settings checked them) as (key, role)."""
    pairs = []
    for entry in entries:
        key, _sep, role = entry.partition("=")
        pairs.append((key.strip(), Role(role.strip() or Role.AGENT.value)))
    return pairs


@dataclass
class Provider:
    """The provider's metadata and keys, fetched lazily and cached by one application."""

    config: Config
    _metadata: dict[str, Any] | None = None
    _metadata_at: float = 0.0
    _keys: KeySet | None = None
    _http: aiohttp.ClientSession | None = field(default=None, repr=False)

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT, trust_env=False)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self.http().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise _refused("unreachable")
                found = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
            raise _refused("unreachable") from err
        if not isinstance(found, dict):
            raise _refused("unreachable")
        return found

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (cached an hour)."""
        if self._metadata is None or time.monotonic() - self._metadata_at > DISCOVERY_TTL:
            found = await self._get_json(
                f"{self.config.issuer}/.well-known/openid-configuration")
            if found.get("issuer") != self.config.issuer:
                raise _refused("unreachable")
            self._metadata, self._metadata_at = found, time.monotonic()
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys (fetched again on ``refresh``)."""
        if self._keys is None or refresh:
            uri = (await self.metadata())["jwks_uri"]
            try:
                self._keys = KeySet.import_key_set(await self._get_json(uri))  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError) as err:
                raise _refused("unreachable") from err
        return self._keys

    async def decode(self, value: str) -> dict[str, Any]:
        """A JWT's claims, its signature verified (RS256/ES256 only; keys refreshed once
        when the token names a key not in the cached set)."""
        for refresh in (False, True):
            keys = await self.keys(refresh=refresh)
            try:
                return dict(jwt.decode(value, keys, algorithms=ALGORITHMS).claims)
            except JoseError as err:
                if refresh or not _unknown_key(err):
                    raise _refused("token") from err
            except (ValueError, TypeError) as err:
                raise _refused("token") from err
        raise _refused("token")  # pragma: no cover - the loop returns or raises


def _unknown_key(err: JoseError) -> bool:
    return "key" in type(err).__name__.lower() or "kid" in str(err).lower() \
        or "key" in str(err).lower()


def _pkce(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
        .rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Started:
    """Where to send the browser, and what the callback must find again."""

    url: str
    state: str
    nonce: str
    verifier: str


async def start(provider: Provider) -> Started:
    """The authorization request: state, nonce, PKCE S256 (and acr_values if set)."""
    metadata = await provider.metadata()
    config = provider.config
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    query = {"response_type": "code", "client_id": config.client_id,
             "redirect_uri": config.redirect_uri, "scope": " ".join(config.scopes),
             "state": state, "nonce": nonce, "code_challenge": _pkce(verifier),
             "code_challenge_method": "S256"}
    if config.acr_values:
        query["acr_values"] = " ".join(config.acr_values)
    return Started(url=f"{metadata['authorization_endpoint']}?{urlencode(query)}",
                   state=state, nonce=nonce, verifier=verifier)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who ProConnect says signed in."""

    sub: str
    email: str
    given_name: str
    usual_name: str
    siret: str | None
    id_token: str


async def finish(provider: Provider, *, code: str, nonce: str,
                 verifier: str) -> Identity:
    """Exchange the code, verify the ID token and read userinfo."""
    metadata = await provider.metadata()
    config = provider.config
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": config.redirect_uri, "client_id": config.client_id,
            "client_secret": config.client_secret, "code_verifier": verifier}
    try:
        async with provider.http().post(metadata["token_endpoint"], data=form,
                                        allow_redirects=False) as response:
            answer = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
        raise _refused("unreachable") from err
    if status >= 500:
        raise _refused("unreachable")
    if status != 200 or not isinstance(answer, dict) or "id_token" not in answer:
        raise _refused("code")
    id_token = str(answer["id_token"])
    claims = await provider.decode(id_token)
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": config.issuer},
        "aud": {"essential": True, "value": config.client_id},
        "exp": {"essential": True}, "iat": {"essential": True},
        "sub": {"essential": True}, "nonce": {"essential": True, "value": nonce}}
    try:
        jwt.JWTClaimsRegistry(now=lambda: int(utcnow().timestamp()), leeway=30,
                              **options).validate(claims)
    except JoseError as err:
        raise _refused("token") from err
    if config.acr_values and claims.get("acr") not in config.acr_values:
        raise _refused("acr")
    info = await _userinfo(provider, metadata, str(answer.get("access_token", "")))
    if info.get("sub") != claims["sub"] or not isinstance(info.get("email"), str):
        raise _refused("token")
    return Identity(sub=str(claims["sub"]), email=str(info["email"]).strip().lower(),
                    given_name=str(info.get("given_name") or ""),
                    usual_name=str(info.get("usual_name") or ""),
                    siret=str(info["siret"]) if info.get("siret") else None,
                    id_token=id_token)


async def _userinfo(provider: Provider, metadata: dict[str, Any],
                    access_token: str) -> dict[str, Any]:
    try:
        async with provider.http().get(
                metadata["userinfo_endpoint"], allow_redirects=False,
                headers={"Authorization": f"Bearer {access_token}"}) as response:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
            body = await response.text()
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        raise _refused("unreachable") from err
    if status != 200:
        raise _refused("unreachable" if status >= 500 else "token")
    if kind == "application/jwt":
        claims = await provider.decode(body.strip())
        if claims.get("iss", provider.config.issuer) != provider.config.issuer or \
                claims.get("aud", provider.config.client_id) not in (
                    provider.config.client_id, [provider.config.client_id]):
            raise _refused("token")
        return claims
    try:
        found = json.loads(body)
    except ValueError as err:
        raise _refused("token") from err
    if not isinstance(found, dict):
        raise _refused("token")
    return found


def _audit(session: Any, *, user: m.User | None, action: str, reason: str | None,
           now: datetime) -> None:
    # No e-mail, no name: the account id and the reason only.
    audit.record(session, at=now, action=action,
                 actor=audit.Actor("anonymous") if user is None
                 else audit.Actor(user.role, user.id),
                 target_kind="user", target_id=user.id if user is not None else None,
                 detail={"via": "proconnect", **({"reason": reason} if reason else {})})


async def record_refusal(*, db: Database, reason: str, now: datetime) -> None:
    """A refused sign-in, in the audit trail."""
    async with db.write() as session:
        _audit(session, user=None, action="signin_refused", reason=reason, now=now)


async def sign_in(*, db: Database, config: Config, identity: Identity, now: datetime,
                  token_ttl: Any) -> tuple[str, datetime]:
    """The account of ``identity`` (linked, or provisioned if allowed) and a new session
    token for it; SignInRefused when there is none or it is disabled."""
    async with db.write() as session:
        user = await session.scalar(sa.select(m.User).where(m.User.oidc_sub == identity.sub))
        if user is None:
            user = await session.scalar(sa.select(m.User).where(
                sa.func.lower(m.User.email) == identity.email))
            if user is not None and user.oidc_sub not in (None, identity.sub):
                user = None  # linked to another ProConnect identity: not this one's
            if user is not None:
                user.oidc_sub = identity.sub
        if user is None:
            domain = identity.email.rpartition("@")[2]
            role = config.provision_domains.get(domain) or (
                config.provision_sirets.get(identity.siret)
                if identity.siret is not None else None)
            if role is not None:
                # No site or desk: an administrator grants one.
                name = f"{identity.given_name} {identity.usual_name}".strip() or identity.email
                user = m.User(email=identity.email, display_name=name[:200],
                              password_hash=NO_PASSWORD, role=role.value,
                              active=True, oidc_sub=identity.sub, created_at=now)
                session.add(user)
                await session.flush()
                _audit(session, user=user, action="provisioned", reason=None, now=now)
        if user is None or not user.active:
            reason = "no_account" if user is None else "disabled"
            _audit(session, user=user, action="signin_refused",
                   reason=reason, now=now)
            refusal = _refused(reason)
        else:
            token = new_api_token()
            expires_at = now + token_ttl
            session.add(m.ApiToken(user_id=user.id, token_hash=digest(token),
                                   created_at=now, expires_at=expires_at))
            _audit(session, user=user, action="signin", reason=None, now=now)
            return token, expires_at
    raise refusal


async def logout_url(provider: Provider, *, id_token: str) -> str | None:
    """The provider's end-session address for this sign-in, or None if it has none."""
    try:
        metadata = await provider.metadata()
    except SignInRefused:
        return None
    endpoint = metadata.get("end_session_endpoint")
    if not endpoint:
        return None
    query = {"id_token_hint": id_token, "state": secrets.token_urlsafe(16),
             "post_logout_redirect_uri": provider.config.post_logout_uri}
    return f"{endpoint}?{urlencode(query)}"
