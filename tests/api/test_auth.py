"""The auth matrix: every write endpoint with every kind of token, HS256 on a real server and RS256 in process."""

from __future__ import annotations

import uuid

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import InProcess
from .support import LONDON_READING, TOKEN_KINDS, make_regular_trip, make_token, make_trip, token_of_kind

EXPECTED = {"none": 401, "expired": 401, "wrong_signature": 401, "tampered": 401, "alg_none": 401, "wrong_scope": 403}


def _write(http: httpx.Client, endpoint: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    trip_id = f"auth-{uuid.uuid4().hex[:12]}"
    if endpoint == "put":
        return http.put(f"/v1/trips/{trip_id}", json=make_trip(trip_id), headers=headers)
    if endpoint == "delete":
        # Store first (with a good token) so a delete that gets through says "deleted".
        http.put(f"/v1/trips/{trip_id}", json=make_trip(trip_id), headers={"Authorization": f"Bearer {make_token()}"})
        return http.delete(f"/v1/trips/{trip_id}", headers=headers)
    if endpoint == "patch_occurrence":
        http.put(f"/v1/trips/{trip_id}", json=make_regular_trip(trip_id), headers={"Authorization": f"Bearer {make_token()}"})
        return http.patch(f"/v1/trips/{trip_id}/occurrences/2027-01-04", json={"seats_available": 1}, headers=headers)
    return http.post("/v1/trips/_bulk", content=orjson.dumps(make_trip(trip_id)) + b"\n", headers=headers)


@pytest.mark.parametrize("kind", TOKEN_KINDS)
@pytest.mark.parametrize("endpoint", ["put", "delete", "bulk", "patch_occurrence"])
def test_write_endpoints_check_tokens(http: httpx.Client, endpoint: str, kind: str) -> None:
    response = _write(http, endpoint, token_of_kind(kind))
    if kind == "right_scope":
        assert response.status_code == 200, response.text
        return
    assert response.status_code == EXPECTED[kind], response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    if kind == "wrong_scope":
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert "trips:write" in response.json()["detail"]


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("Basic dXNlcjpwYXNz", "needs a bearer token"),
        ("Bearer not-a-jwt", "not a JWT"),
        (f"Bearer {make_token(expires_in=-3600)}", "expired"),
        (f"Bearer {jwt.encode({'scope': 'trips:write'}, 'tripsearch-test-secret-0123456789abcdef', algorithm='HS256')}", "'exp'"),
        (f"Bearer {token_of_kind('alg_none')}", "'none'"),
    ],
)
def test_401_says_what_is_wrong(http: httpx.Client, header: str, words: str) -> None:
    response = http.put("/v1/trips/x", json=make_trip("x"), headers={"Authorization": header})
    assert response.status_code == 401
    assert words in response.json()["detail"]


def test_scope_may_be_a_list_claim(http: httpx.Client) -> None:
    token = make_token(None, scp=["trips:write"])
    assert _write(http, "put", token).status_code == 200


def test_search_and_places_are_public_by_default(http: httpx.Client) -> None:
    assert http.get("/v1/search", params=LONDON_READING).status_code == 200
    assert http.get("/v1/places", params={"q": "par"}).status_code == 200
    assert http.get("/v1/trips/t-1-0").status_code == 200


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key, pem


@pytest.mark.anyio
async def test_rs256_tokens(in_process: InProcess) -> None:
    key, public_pem = _rsa_pair()
    other_key, _ = _rsa_pair()
    async with in_process(jwt_secret=None, jwt_public_key=public_pem) as client:

        async def put(token: str) -> int:
            response = await client.put("/v1/trips/rs-1", json=make_trip("rs-1"), headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        assert await put(make_token(key=key, algorithm="RS256")) == 200
        assert await put(make_token("trips:read", key=key, algorithm="RS256")) == 403
        assert await put(make_token(key=other_key, algorithm="RS256")) == 401
        assert await put(make_token(expires_in=-60, key=key, algorithm="RS256")) == 401
        # HS256 is not configured here, and the public key must never work as an HMAC secret.
        assert await put(_hs256_signed_with(public_pem)) == 401
        assert await put(make_token()) == 401


def _hs256_signed_with(secret: str) -> str:
    # PyJWT refuses to sign HS256 with a PEM key, as it should; sign by hand to forge the attack token.
    import base64
    import hashlib
    import hmac
    import time

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(orjson.dumps({"scope": "trips:write", "exp": int(time.time()) + 60}))
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.anyio
async def test_audience_and_issuer_are_checked_when_configured(in_process: InProcess) -> None:
    async with in_process(jwt_audience="tripsearch", jwt_issuer="https://auth.example") as client:

        async def put(token: str) -> int:
            response = await client.put("/v1/trips/aud-1", json=make_trip("aud-1"), headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        assert await put(make_token(aud="tripsearch", iss="https://auth.example")) == 200
        assert await put(make_token(aud="another-api", iss="https://auth.example")) == 401
        assert await put(make_token(aud="tripsearch", iss="https://evil.example")) == 401
        assert await put(make_token()) == 401


@pytest.mark.anyio
async def test_search_can_require_a_read_token(in_process: InProcess) -> None:
    async with in_process(public_search=False) as client:
        assert (await client.get("/v1/search", params=LONDON_READING)).status_code == 401
        assert (await client.get("/v1/places", params={"q": "par"})).status_code == 401
        assert (await client.get("/v1/search", params=LONDON_READING, headers={"Authorization": f"Bearer {make_token()}"})).status_code == 403
        read = {"Authorization": f"Bearer {make_token('trips:read')}"}
        searched = await client.get("/v1/search", params=LONDON_READING, headers=read)
        assert searched.status_code == 200
        assert searched.headers["cache-control"].startswith("private")  # shared caches must not serve it to others
        assert (await client.get("/v1/places", params={"q": "par"}, headers=read)).status_code == 200
        assert (await client.get("/health")).status_code == 200


@pytest.mark.anyio
async def test_a_server_without_keys_refuses_every_token(in_process: InProcess) -> None:
    async with in_process(jwt_secret=None) as client:
        response = await client.put("/v1/trips/k-1", json=make_trip("k-1"), headers={"Authorization": f"Bearer {make_token()}"})
    assert response.status_code == 401
    assert "TRIPSEARCH_JWT_SECRET" in response.json()["detail"]
