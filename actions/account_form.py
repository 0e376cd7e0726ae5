"""The account form: 户号 first, then the identity check when the request discloses account data."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.context import say
from actions.requests import NEEDS_IDENTITY
from bot import accounts, identity
from bot.masking import mask_account
from bot.outages import match_area
from bot.utility import UtilityUnavailable, utility_data

log = logging.getLogger(__name__)

# intents that interrupt the form instead of answering its question
CHANGES_OF_SUBJECT = {
    "deny",
    "goodbye",
    "request_human",
    "faq",
    "bot_challenge",
    "complain",
    "express_frustration",
    "report_hazard",
    "payment_not_restored",
    "report_power_quality",
}


class ValidateAccountForm(FormValidationAction):
    def name(self) -> str:
        return "validate_account_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        request = tracker.get_slot("request")
        if request is None:
            return []
        if request == "query_outage":
            return [] if tracker.get_slot("area") else ["account_number"]
        number = tracker.get_slot("account_number")
        if tracker.get_slot("identity_locked") or (number and tracker.get_slot("verified_account") == number):
            return ["account_number"]
        return ["account_number", "identity_proof"]

    async def extract_account_number(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer_to(tracker, "account_number")

    async def extract_identity_proof(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer_to(tracker, "identity_proof")

    def validate_account_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "")
        if tracker.get_slot("request") == "query_outage":
            area = _area_in(text)
            if area:
                # the form asks for the 户号 only when none is held, so nothing is lost
                return {"account_number": None, "area": area}
        parsed = accounts.parse(text)
        if parsed.number is None:
            log.info("account number not usable: %s", parsed.problem)
            if parsed.problem == "wrong_length" and parsed.digits_given == 11:
                say(dispatcher, tracker, "account_looks_like_phone")
            elif parsed.problem == "wrong_length":
                say(dispatcher, tracker, "account_wrong_length", digits=parsed.digits_given)
            elif parsed.problem == "has_letters":
                say(dispatcher, tracker, "account_has_letters")
            else:
                say(dispatcher, tracker, "account_missing")
            return {"account_number": None}
        try:
            account = utility_data().account(parsed.number)
        except UtilityUnavailable:
            # keep the number; the answer step apologises and gives the 95598 line
            return {"account_number": parsed.number, "identity_proof": "unavailable"}
        if account is None:
            log.info("unknown account number %s", mask_account(parsed.number))
            say(dispatcher, tracker, "account_not_found", account=mask_account(parsed.number))
            return {"account_number": None}
        if parsed.number != tracker.get_slot("verified_account"):
            return {"account_number": parsed.number, "identity_proof": None}
        return {"account_number": parsed.number}

    def validate_identity_proof(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        number = tracker.get_slot("account_number")
        if value == "unavailable" or tracker.get_slot("request") not in NEEDS_IDENTITY:
            return {"identity_proof": value}
        try:
            account = utility_data().account(number)
        except UtilityUnavailable:
            return {"identity_proof": "unavailable"}
        failures = int(tracker.get_slot("identity_failures") or 0)
        if account is not None and identity.matches(account, str(value)):
            return {"identity_proof": "verified", "verified_account": number}
        failures += 1
        log.warning("identity check failed for %s (attempt %d)", mask_account(number or ""), failures)
        if identity.attempts_left(failures) == 0:
            return {"identity_proof": "locked", "identity_locked": True, "identity_failures": failures}
        say(dispatcher, tracker, "identity_mismatch", left=identity.attempts_left(failures))
        return {"identity_proof": None, "identity_failures": failures}


class ActionAskAccountNumber(Action):
    def name(self) -> str:
        return "action_ask_account_number"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        outage = tracker.get_slot("request") == "query_outage"
        say(dispatcher, tracker, "ask_account_number_outage" if outage else "ask_account_number_bill")
        return []


class ActionAskIdentityProof(Action):
    def name(self) -> str:
        return "action_ask_identity_proof"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict[str, Any]]:
        say(dispatcher, tracker, "ask_identity_proof")
        return []


def _answer_to(tracker: Tracker, slot: str) -> dict[str, Any]:
    """The latest message as the answer to the question the form asked, unless the
    customer clearly changed the subject (numbers are always taken as an answer)."""
    if tracker.get_slot("requested_slot") != slot:
        return {}
    text = tracker.latest_message.get("text") or ""
    intent = tracker.latest_message.get("intent", {}).get("name")
    if any(c.isdigit() for c in text) or intent not in CHANGES_OF_SUBJECT:
        return {slot: text}
    return {}


def _area_in(text: str) -> str | None:
    try:
        return match_area(utility_data(), text)
    except UtilityUnavailable:
        return None
