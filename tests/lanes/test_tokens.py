from __future__ import annotations

from datetime import timedelta

import pytest

from dispatchsite.core.errors import NotFoundError, ValidationError
from lanes.models import ApiToken
from lanes.tokens import (
    api_token_create,
    api_token_revoke,
    bearer_from_headers,
    token_hash,
    token_user,
)

pytestmark = pytest.mark.django_db


def test_it_stores_only_the_hash() -> None:
    token, raw = api_token_create(name="ci")
    assert raw.startswith("dsp_")
    assert token.token_hash == token_hash(raw)
    assert raw not in {token.token_hash, token.prefix}
    assert raw.startswith(token.prefix)


def test_it_authenticates_a_live_token() -> None:
    token, raw = api_token_create(name="ci")
    assert token_user(raw) == token
    assert token_user(f"  {raw} ") == token


def test_it_rejects_wrong_secrets_with_a_known_prefix() -> None:
    token, raw = api_token_create(name="ci")
    assert token_user(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert token_user(token.prefix) is None
    assert token_user("") is None
    assert token_user(None) is None
    assert token_user("not-a-dispatch-token") is None


def test_it_rejects_revoked_tokens() -> None:
    _token, raw = api_token_create(name="ci")
    api_token_revoke(name="ci")
    assert token_user(raw) is None


def test_it_refuses_duplicate_names_but_reuses_revoked_ones() -> None:
    api_token_create(name="ci")
    with pytest.raises(ValidationError):
        api_token_create(name="ci")
    api_token_revoke(name="ci")
    _token, raw = api_token_create(name="ci")
    assert token_user(raw) is not None
    assert ApiToken.objects.filter(name="ci").count() == 1


def test_it_refuses_an_empty_name() -> None:
    with pytest.raises(ValidationError):
        api_token_create(name="  ")


def test_it_reports_revoking_an_unknown_token() -> None:
    with pytest.raises(NotFoundError):
        api_token_revoke(name="nope")


def test_it_records_last_use_coarsely() -> None:
    token, raw = api_token_create(name="ci")
    assert token.last_used_at is None
    token_user(raw)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    token_user(raw)  # within the resolution: no write
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(hours=1))
    token_user(raw)
    refreshed = ApiToken.objects.get(pk=token.pk).last_used_at
    assert refreshed is not None and refreshed > first - timedelta(hours=1)


def test_it_reads_bearer_tokens_from_asgi_headers() -> None:
    headers = [(b"host", b"x"), (b"Authorization", b"Bearer dsp_abc")]
    assert bearer_from_headers(headers) == "dsp_abc"
    assert bearer_from_headers([(b"authorization", b"Basic xyz")]) is None
    assert bearer_from_headers([]) is None
