"""A 户号 a channel vouches for counts only with the bot's own signature, unexpired."""

from __future__ import annotations

import pytest

from bot.known_customer import vouch, vouched_account


@pytest.fixture(autouse=True)
def secret(monkeypatch) -> None:
    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", "test-secret")


def test_a_signed_account_is_trusted():
    assert vouched_account({"customer": vouch("3201000001", "website")}) == "3201000001"
    assert vouched_account({"customer": vouch("3201000002", "wechat")}) == "3201000002"


@pytest.mark.parametrize(
    "change",
    [
        {"account_number": "3201000002"},  # another customer's 户号 under this signature
        {"source": "wechat"},
        {"expires": 4102444800},  # a later expiry than was signed
        {"signature": "0" * 64},
        {"signature": None},
        {"account_number": "32010000"},
    ],
)
def test_a_changed_token_is_not_trusted(change):
    token = {**vouch("3201000001", "website"), **change}
    assert vouched_account({"customer": token}) is None


def test_an_expired_token_is_not_trusted():
    assert vouched_account({"customer": vouch("3201000001", "website", lifetime_seconds=-1)}) is None


@pytest.mark.parametrize("metadata", [None, {}, {"customer": "3201000001"}, {"customer": {}}])
def test_no_token_no_customer(metadata):
    assert vouched_account(metadata) is None


def test_without_a_secret_nothing_is_trusted(monkeypatch):
    token = vouch("3201000001", "website")
    monkeypatch.setenv("CUSTOMER_TOKEN_SECRET", "")
    assert vouched_account({"customer": token}) is None


def test_only_known_channels_vouch():
    with pytest.raises(ValueError):
        vouch("3201000001", "rest")


def test_a_signature_in_other_characters_is_refused_not_a_crash():
    token = {**vouch("3201000001", "website"), "signature": "签名" * 32}
    assert vouched_account({"customer": token}) is None
