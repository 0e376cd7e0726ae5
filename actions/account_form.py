"""The account form: 户号 first, then the identity check when the request discloses account data."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.context import intent_of, latest_entity, say
from bot import accounts, clock, identity
from bot.masking import mask_account
from bot.outages import known_area_in
from bot.tickets.errors import TicketStoreUnavailable
from bot.tickets.service import conversation_tickets, tickets_db
from bot.utility import UtilityUnavailable, utility_data
from bot.wechat.bindings import bind_verified_follower

log = logging.getLogger(__name__)


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
        if request == "query_ticket" and await asyncio.to_thread(_ticket_known, tracker):
            return []
        number = tracker.get_slot("account_number")
        if number and number in (tracker.get_slot("verified_account"), tracker.get_slot("locked_account")):
            return ["account_number"]
        return ["account_number", "identity_proof"]

    async def extract_account_number(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Typed text is taken as the 户号 answer when it has digits or is plain information."""
        if tracker.get_slot("requested_slot") != "account_number":
            return {}
        text = tracker.latest_message.get("text") or ""
        answers = {"inform", "nlu_fallback"}
        if tracker.get_slot("request") == "query_outage":
            answers.add("query_outage")  # "光明路那边" answers "户号或小区名"
        if any(c.isdigit() for c in text) or intent_of(tracker) in answers:
            return {"account_number": text}
        return {}

    async def extract_identity_proof(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Only a name or digits count as an answer; "你好" or "😀" are not a wrong guess."""
        if tracker.get_slot("requested_slot") != "identity_proof":
            return {}
        text = tracker.latest_message.get("text") or ""
        if any(c.isdigit() for c in text) or latest_entity(tracker, "person_name") or intent_of(tracker) == "inform":
            return {"identity_proof": text}
        return {}

    async def validate_account_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "")
        if tracker.get_slot("request") == "query_outage":
            area = await asyncio.to_thread(known_area_in, utility_data(), text) or latest_entity(tracker, "address")
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
            account = await asyncio.to_thread(utility_data().account, parsed.number)
        except UtilityUnavailable:
            # keep the number; the answer step apologises and gives the 95598 line
            return {"account_number": parsed.number, "identity_proof": None}
        if account is None:
            log.info("unknown account number %s", mask_account(parsed.number))
            say(dispatcher, tracker, "account_not_found", account=mask_account(parsed.number))
            return {"account_number": None}
        slots: dict[str, Any] = {"account_number": parsed.number}
        if parsed.number != tracker.get_slot("verified_account"):
            slots["identity_proof"] = None
            if tracker.get_slot("request") in identity.NEEDS_IDENTITY:
                locked = await asyncio.to_thread(_locked, parsed.number)
                slots["locked_account"] = parsed.number if locked else None
        return slots

    async def validate_identity_proof(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        number = tracker.get_slot("account_number")
        if not number or tracker.get_slot("request") not in identity.NEEDS_IDENTITY:
            return {"identity_proof": None}
        try:
            outcome = await asyncio.to_thread(_check, number, str(value))
        except UtilityUnavailable:
            # the check cannot run; the answer step apologises and discloses nothing
            return {"identity_proof": "unchecked"}
        if outcome == "verified":
            if tracker.get_latest_input_channel() == "wechat":
                # a WeChat follower (the sender id is the openid) is not asked again next time
                await asyncio.to_thread(bind_verified_follower, tracker.sender_id, number)
            return {"identity_proof": "verified", "verified_account": number}
        log.warning("identity check failed for %s (%s)", mask_account(number), outcome)
        if outcome == "locked":
            return {"identity_proof": "locked", "locked_account": number}
        say(dispatcher, tracker, "identity_mismatch", left=outcome)
        return {"identity_proof": None}


def _check(number: str, answer: str) -> str:
    """"verified", "locked", or the attempts left after this wrong answer."""
    attempts = identity.identity_attempts()
    now = clock.now()
    if attempts.attempts_left(number, now) == 0:
        return "locked"
    account = utility_data().account(number)
    if account is not None and identity.matches(account, answer):
        attempts.clear(number)
        return "verified"
    left = attempts.record_failure(number, now)
    return "locked" if left == 0 else str(left)


def _locked(number: str) -> bool:
    try:
        return identity.identity_attempts().attempts_left(number, clock.now()) == 0
    except UtilityUnavailable:
        return False  # the check itself will refuse while the database is down


def _ticket_known(tracker: Tracker) -> bool:
    """A ticket number given, or tickets filed in this conversation: no 户号 needed."""
    if tracker.get_slot("ticket_number"):
        return True
    try:
        return bool(conversation_tickets(tickets_db(), tracker.sender_id))
    except TicketStoreUnavailable:
        return False


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
