"""Bearer tokens: JWTs signed HS256 with a shared secret or RS256 with a private key whose public half is configured.

The API keeps no sessions and calls no identity server: it checks the
signature, the expiry (``exp`` is required) and, when configured, the
audience and issuer, then looks for a scope in the ``scope`` claim (a
space-separated string, as in OAuth 2.0) or ``scp`` (a list). That is what
an edge proxy would check, so any worker can serve any request.

A missing, malformed, expired or tampered token, or one whose ``alg`` is not
a configured one (``none`` never is), gets 401; a valid token without the
scope gets 403.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Awaitable, Callable

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .problems import Problem
from .settings import Settings, SettingsError

__all__ = ["TokenVerifier", "development_token", "Claims", "WRITE_SCOPE", "READ_SCOPE", "ALERTS_SCOPE", "scopes_of", "require_scope", "WriteAccess", "AlertsAccess", "bearer"]

Claims = dict[str, Any]
WRITE_SCOPE = "trips:write"
READ_SCOPE = "trips:read"
ALERTS_SCOPE = "alerts:write"  # save, read and delete one's own alerts (the owner is the token's sub)
LEEWAY_S = 30  # clock skew tolerated between the token issuer and this server

bearer = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT (HS256 or RS256) with an `exp` claim and the scope the operation needs, e.g. `trips:write`.",
    auto_error=False,
)


def development_token(scopes: list[str], subject: str = "developer", ttl_s: int = 86_400, settings: Settings | None = None) -> str:
    """Return an HS256 JWT for ``TRIPSEARCH_JWT_SECRET`` granting ``scopes``: for development (``tripsearch token``).

    A real deployment takes its tokens from its identity provider; this one
    carries the audience and issuer the settings require, so the API accepts it.
    """
    settings = Settings.from_env() if settings is None else settings
    if not settings.jwt_secret:
        raise SettingsError("TRIPSEARCH_JWT_SECRET is not set: set it to the secret the server uses (make serve sets a development one)")
    now = int(time.time())
    claims: Claims = {"sub": subject, "scope": " ".join(scopes), "iat": now, "exp": now + ttl_s}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


class TokenVerifier:
    """Check JWTs against the keys of the settings."""

    def __init__(self, settings: Settings) -> None:
        self._keys: dict[str, Any] = {}
        if settings.jwt_secret:
            self._keys["HS256"] = settings.jwt_secret.encode()
        if settings.jwt_public_key:
            try:
                key = load_pem_public_key(settings.jwt_public_key.encode())
            except ValueError as exc:
                raise SettingsError(f"TRIPSEARCH_JWT_PUBLIC_KEY is not a PEM public key ({exc})") from None
            if not isinstance(key, RSAPublicKey):
                raise SettingsError("TRIPSEARCH_JWT_PUBLIC_KEY must be an RSA public key (tokens are checked with RS256)")
            self._keys["RS256"] = key
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def claims(self, token: str) -> Claims:
        """Return the claims of a valid token, or raise a 401 :class:`Problem` that says what is wrong."""
        if not self._keys:
            raise _unauthorized("this server accepts no tokens: neither TRIPSEARCH_JWT_SECRET nor TRIPSEARCH_JWT_PUBLIC_KEY is set")
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise _unauthorized("the bearer token is not a JWT") from None
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None or not isinstance(alg, str):
            raise _unauthorized(f"tokens signed with alg {str(alg)[:20]!r} are not accepted (accepted: {', '.join(self._keys)})")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise _unauthorized("the token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"the token is not valid ({exc})") from None


def scopes_of(claims: Claims) -> set[str]:
    """Return the scopes a token grants, from ``scope`` (space-separated) or ``scp`` (list or string)."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(v for v in value if isinstance(v, str))
    return scopes


def require_scope(scope: str) -> Callable[..., Awaitable[Claims]]:
    """Return a dependency that admits requests whose bearer token grants ``scope``."""

    async def dependency(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Claims:
        if credentials is None:
            raise _unauthorized(f"this operation needs a bearer token with the scope {scope}: send Authorization: Bearer <JWT>", error=None)
        verifier: TokenVerifier = request.app.state.verifier
        claims = verifier.claims(credentials.credentials)
        if scope not in scopes_of(claims):
            raise Problem(
                403,
                f"the token does not grant the scope {scope}",
                code="insufficient_scope",
                headers={"WWW-Authenticate": f'Bearer realm="tripsearch", error="insufficient_scope", scope="{scope}"'},
            )
        return claims

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


def _unauthorized(detail: str, error: str | None = "invalid_token") -> Problem:
    challenge = 'Bearer realm="tripsearch"' + (f', error="{error}"' if error else "")
    return Problem(401, detail, code="unauthorized", headers={"WWW-Authenticate": challenge})


WriteAccess = Annotated[Claims, Depends(require_scope(WRITE_SCOPE))]
AlertsAccess = Annotated[Claims, Depends(require_scope(ALERTS_SCOPE))]
