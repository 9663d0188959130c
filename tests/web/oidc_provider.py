"""A real OpenID provider on loopback for the ProConnect tests, built with joserfc.

Discovery, JWKS (an RS256 and an ES256 key), authorize (approves at once as the person
``self.person`` says), token (one use per code, PKCE S256 checked, the client's secret
checked), userinfo as a signed JWT (as ProConnect answers), and end_session. ``tweak``
bends the next ID tokens to test every refusal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

CLIENT_ID, CLIENT_SECRET = "visio-test", "client-secret-for-tests"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class OidcProvider:
    def __init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.published: list[Any] = [self.rsa, self.ec]
        self.person: dict[str, Any] = {"sub": "sub-agent-1", "email": "agent@example.gouv.fr",
                                       "given_name": "Camille", "usual_name": "Durand",
                                       "siret": "13002526500013", "uid": "1"}
        self.acr = "eidas1"
        self.tweak: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.logouts: list[dict[str, str]] = []
        self.down = False
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/userinfo", self.userinfo)
        app.router.add_get("/session/end", self.end_session)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _check_up(self) -> None:
        if self.down:
            raise web.HTTPServiceUnavailable()

    async def discovery(self, request: web.Request) -> web.Response:
        self._check_up()
        return web.json_response({
            "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token", "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks", "end_session_endpoint": f"{self.url}/session/end",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "userinfo_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"]})

    async def jwks(self, request: web.Request) -> web.Response:
        self._check_up()
        return web.json_response(KeySet(self.published).as_dict(private=False))

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        assert q["client_id"] == CLIENT_ID
        assert q["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"],
                            "redirect_uri": q["redirect_uri"], "scope": q["scope"],
                            "acr_values": q.get("acr_values")}
        back = urlencode({"code": code, "state": q["state"]})
        raise web.HTTPFound(f"{q['redirect_uri']}?{back}")

    def _sign(self, claims: dict[str, Any]) -> str:
        alg = self.tweak.get("alg", "RS256")
        if alg == "none":
            return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        key = self.stranger if self.tweak.get("key") == "stranger" else (
            self.ec if alg == "ES256" else self.rsa)
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)

    async def token(self, request: web.Request) -> web.Response:
        self._check_up()
        form = await request.post()
        grant = self.codes.pop(str(form.get("code")), None)  # one use
        if grant is None or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"] or form.get("redirect_uri") != grant["redirect_uri"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {"iss": self.url, "aud": CLIENT_ID, "sub": self.person["sub"],
                  "iat": now, "exp": now + 60, "nonce": grant["nonce"], "acr": self.acr}
        claims.update(self.tweak.get("claims", {}))
        access = secrets.token_urlsafe(16)
        self.tokens[access] = dict(self.person)
        return web.json_response({"access_token": access, "token_type": "Bearer",
                                  "expires_in": 60, "id_token": self._sign(claims)})

    async def userinfo(self, request: web.Request) -> web.Response:
        self._check_up()
        access = request.headers.get("Authorization", "").removeprefix("Bearer ")
        person = self.tokens.get(access)
        if person is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        if self.tweak.get("userinfo") == "json":
            return web.json_response(person)
        signed = jwt.encode({"alg": "RS256", "kid": self.rsa.kid},
                            {**person, "iss": self.url, "aud": CLIENT_ID}, self.rsa)
        return web.Response(text=signed, content_type="application/jwt")

    async def end_session(self, request: web.Request) -> web.Response:
        self.logouts.append(dict(request.query))
        raise web.HTTPFound(request.query["post_logout_redirect_uri"])
