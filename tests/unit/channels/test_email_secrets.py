"""Email secrets without servers or a database: XOAUTH2 provider settings, password encryption."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import InvalidToken

from channels.email.oauth import ProviderConfig, parse_providers
from channels.email.passwords import (
    PasswordUnreadable,
    UnreadablePassword,
    decrypt_with,
    encrypt_with,
    is_unreadable,
)

GOOGLE = {
    "token_url": "https://oauth2.googleapis.com/token",
    "client_id": "id.apps.googleusercontent.com",
    "client_secret": "GOCSPX-secret",
    "refresh_tokens": {"support@example.com": "1//0g-refresh"},
}


def test_providers_are_read_from_inline_json():
    (config,) = parse_providers(json.dumps({"google": GOOGLE})).values()

    assert config == ProviderConfig(
        name="google",
        token_url=GOOGLE["token_url"],
        client_id=GOOGLE["client_id"],
        client_secret="GOCSPX-secret",
        refresh_tokens={"support@example.com": "1//0g-refresh"},
    )
    assert "GOCSPX-secret" not in repr(config) and "1//0g-refresh" not in repr(config)


def test_providers_are_read_from_a_json_file(tmp_path):
    path = tmp_path / "oauth.json"
    path.write_text(json.dumps({"google": GOOGLE}))

    assert list(parse_providers(str(path))) == ["google"]


def test_an_empty_setting_configures_no_provider():
    assert parse_providers("  ") == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**GOOGLE, "token_url": "http://oauth.example.com/token"}, "token_url must be https://"),
        ({**GOOGLE, "client_secrt": "typo"}, "has unknown keys: client_secrt"),
        ({k: v for k, v in GOOGLE.items() if k != "client_id"}, "needs 'client_id'"),
        ({**GOOGLE, "refresh_tokens": {}}, "needs 'refresh_tokens' or 'refresh_token'"),
        ({**GOOGLE, "client_auth": "jwt"}, "client_auth must be 'basic' or 'post'"),
    ],
)
def test_a_mistake_in_the_provider_settings_is_named(spec, message):
    with pytest.raises(ValueError) as error:
        parse_providers(json.dumps({"google": spec}))

    assert str(error.value).startswith("RAPPORT_EMAIL_OAUTH_PROVIDERS['google']")
    assert message in str(error.value)


def test_plain_http_is_allowed_only_to_this_machine():
    local = {**GOOGLE, "token_url": "http://127.0.0.1:8080/token"}
    assert parse_providers(json.dumps({"local": local}))["local"].token_url.startswith("http:")


def test_invalid_json_is_reported_with_the_setting_name():
    with pytest.raises(ValueError, match=r"^RAPPORT_EMAIL_OAUTH_PROVIDERS is not valid JSON"):
        parse_providers("{not json")


def test_a_password_encrypts_differently_each_time_and_decrypts_with_its_key():
    first, second = encrypt_with("key-1", "hunter2"), encrypt_with("key-1", "hunter2")

    assert first != second and "hunter2" not in first
    assert decrypt_with(["key-1"], first) == decrypt_with(["key-1"], second) == "hunter2"


def test_a_password_decrypts_with_a_fallback_key_but_not_with_another_key():
    token = encrypt_with("old-key", "hunter2")

    assert decrypt_with(["new-key", "old-key"], token) == "hunter2"
    with pytest.raises(InvalidToken):
        decrypt_with(["new-key"], token)


def test_an_unreadable_password_is_empty_but_keeps_its_ciphertext():
    value = UnreadablePassword("gAAAA-ciphertext")

    assert value == "" and not value and is_unreadable(value)
    assert value.ciphertext == "gAAAA-ciphertext"
    assert "gAAAA" not in repr(value)
    assert not is_unreadable("") and not is_unreadable(None)


def test_the_unreadable_password_error_tells_the_admin_what_to_do():
    assert str(PasswordUnreadable("SMTP")) == (
        "The stored SMTP password can no longer be decrypted, probably because the secret "
        "key (RAPPORT_SECRET_KEY) changed: the password must be re-entered."
    )
