"""api.settings: environment variables in, one frozen value out, clear errors naming the variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.auth import TokenVerifier
from api.settings import ENV, Settings, SettingsError

from .support import SECRET


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.data, s.backend_url, s.public_search, s.cache_max_age, s.refresh_interval) == ("data", None, True, 5, 1.0)
    assert (s.max_body_bytes, s.max_bulk_bytes, s.max_bulk_lines, s.max_json_depth) == (1 << 20, 10 << 20, 10_000, 32)
    assert s.target == "data"


def test_every_field_has_a_variable_and_round_trips() -> None:
    assert set(ENV) == {f.name for f in dataclasses.fields(Settings)}
    s = Settings(
        data="/srv/d",
        backend_url="http://es:9200",
        jwt_secret=SECRET,
        public_search=False,
        cache_max_age=30,
        cors_origins=("https://a.example", "https://b.example"),
        max_bulk_lines=50,
        refresh_interval=0.25,
    )
    assert Settings.from_env(s.to_env()) == s
    assert s.target == "http://es:9200"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"TRIPSEARCH_JWT_SECRET": "short"}, "TRIPSEARCH_JWT_SECRET must be at least 32 bytes"),
        ({"TRIPSEARCH_CACHE_MAX_AGE": "soon"}, "TRIPSEARCH_CACHE_MAX_AGE must be an integer"),
        ({"TRIPSEARCH_CACHE_MAX_AGE": "-1"}, "TRIPSEARCH_CACHE_MAX_AGE must be at least 0"),
        ({"TRIPSEARCH_PUBLIC_SEARCH": "maybe"}, "TRIPSEARCH_PUBLIC_SEARCH must be true or false"),
        ({"TRIPSEARCH_REFRESH_INTERVAL": "nan"}, "TRIPSEARCH_REFRESH_INTERVAL must be a finite number"),
        ({"TRIPSEARCH_MAX_BULK_LINES": "0"}, "TRIPSEARCH_MAX_BULK_LINES must be at least 1"),
        ({"TRIPSEARCH_KEEPALIVE_REQUESTS": "-5"}, "TRIPSEARCH_KEEPALIVE_REQUESTS must be at least 0"),
        ({"TRIPSEARCH_JWT_PUBLIC_KEY": "/no/such/key.pem"}, "cannot read the public key file"),
        ({"TRIPSEARCH_ALERTS_MATCHING": "later"}, "TRIPSEARCH_ALERTS_MATCHING must be one of inline, process, got 'later'"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_public_key_from_a_file(tmp_path: Path) -> None:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    settings = Settings.from_env({"TRIPSEARCH_JWT_PUBLIC_KEY": str(path)})
    assert settings.jwt_public_key == pem.decode()
    assert TokenVerifier(settings).algorithms == ("RS256",)


def test_only_rsa_public_keys_are_taken() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(SettingsError, match="RSA"):
        TokenVerifier(Settings(jwt_public_key=pem.decode()))
