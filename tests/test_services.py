"""Unit tests of the bot/ services, on the real demo databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import logging
import os
import string
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from bot import (
    accounts,
    billing,
    clock,
    dialogue,
    identity,
    masking,
    models,
    months,
    outages,
    replies,
    tariff,
    text,
)
from bot.db import Base, engine_for, session_factory
from bot.demo_data import MONTHS_OF_BILLS, NotADemoDatabase, ensure_demo_data, seeded_on
from bot.schema import upgrade
from bot.utility.records import Account, Outage
from bot.utility.sql import SqlUtilityData

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

ZHANG_WEI, LI_NA, WANG_QIANG = "3201000001", "3201000002", "3201000003"
ALL_TABLES = (
    models.Area,
    models.Account,
    models.Bill,
    models.MeterReading,
    models.Payment,
    models.ReconnectionOrder,
    models.Outage,
    models.Meta,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database of the test's own, so the shared demo database stays untouched."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    if os.environ.get("SKIP_POSTGRES") == "1":
        pytest.skip("SKIP_POSTGRES=1: PostgreSQL tests skipped on request")
    import psycopg2

    name = f"bot_own_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        engine_for(url).dispose()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _counts(url: str) -> dict[str, int]:
    with session_factory(url)() as session:
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in ALL_TABLES}


def _last_month() -> date:
    return months.shift(clock.today().replace(day=1), -1)


# --- tariff ------------------------------------------------------------------


T1, T2, T3 = Decimal("0.5283"), Decimal("0.5783"), Decimal("0.8283")


def _yuan(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (0, Decimal("0.00")),
        (229, _yuan(229 * T1)),
        (230, _yuan(230 * T1)),
        (231, _yuan(230 * T1 + 1 * T2)),
        (400, _yuan(230 * T1 + 170 * T2)),
        (401, _yuan(230 * T1 + 170 * T2 + 1 * T3)),
        (521, _yuan(230 * T1 + 170 * T2 + 121 * T3)),
    ],
)
def test_amount_for_prices_each_kwh_at_its_own_tier(usage, expected):
    assert tariff.amount_for(Decimal(usage)) == expected


def test_amount_for_hand_computed_values():
    assert tariff.amount_for(Decimal(230)) == Decimal("121.51")
    assert tariff.amount_for(Decimal(400)) == Decimal("219.82")
    assert tariff.amount_for(Decimal(521)) == Decimal("320.04")


@pytest.mark.parametrize(
    ("usage", "tier"),
    [("0", 1), ("230", 1), ("230.1", 2), ("400", 2), ("400.1", 3), ("5000", 3)],
)
def test_tier_of(usage, tier):
    assert tariff.tier_of(Decimal(usage)).number == tier


def test_tariff_tiers_from_environment(monkeypatch):
    monkeypatch.setenv("TARIFF_TIERS", "100:0.5,:1.0")
    assert [(t.upper_kwh, t.price) for t in tariff.tiers()] == [(Decimal(100), Decimal("0.5")), (None, Decimal("1.0"))]
    assert tariff.amount_for(Decimal(150)) == Decimal("100.00")
    assert tariff.tier_of(Decimal(100)).number == 1
    assert tariff.tier_of(Decimal(101)).number == 2


# --- months ------------------------------------------------------------------

TODAY = date(2026, 11, 24)


@pytest.mark.parametrize(
    ("words", "month"),
    [
        ("上个月", date(2026, 10, 1)),
        ("上月的电费", date(2026, 10, 1)),
        ("上上个月", date(2026, 9, 1)),
        ("本月", date(2026, 11, 1)),
        ("9月", date(2026, 9, 1)),
        ("九月份", date(2026, 9, 1)),
        ("十一月", date(2026, 11, 1)),
        ("十二月", date(2025, 12, 1)),  # not yet begun this year: last year's
        ("12月", date(2025, 12, 1)),
        ("去年12月", date(2025, 12, 1)),
        ("前年3月", date(2024, 3, 1)),
        ("2026年9月", date(2026, 9, 1)),
        ("今年12月", date(2026, 12, 1)),
    ],
)
def test_resolve_month(words, month):
    assert months.resolve(words, TODAY) == month


@pytest.mark.parametrize("words", [None, "", "我要查电费", "13月", "0月", "二十月", "三个月前"])
def test_resolve_nonsense_is_none(words):
    assert months.resolve(words, TODAY) is None


def test_resolve_across_the_new_year():
    january = date(2026, 1, 15)
    assert months.resolve("上个月", january) == date(2025, 12, 1)
    assert months.resolve("上上个月", january) == date(2025, 11, 1)
    assert months.resolve("1月", january) == date(2026, 1, 1)
    assert months.resolve("2月", january) == date(2025, 2, 1)


@pytest.mark.parametrize(
    ("start", "by", "expected"),
    [
        (date(2025, 12, 1), 1, date(2026, 1, 1)),
        (date(2026, 1, 1), -1, date(2025, 12, 1)),
        (date(2026, 1, 1), -13, date(2024, 12, 1)),
        (date(2026, 3, 31), -1, date(2026, 2, 1)),
        (date(2026, 5, 1), 0, date(2026, 5, 1)),
        (date(2026, 5, 1), 24, date(2028, 5, 1)),
    ],
)
def test_shift(start, by, expected):
    assert months.shift(start, by) == expected


# --- accounts.parse ------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "number", "problem", "digits"),
    [
        ("我的户号是3201000001，帮我查一下", "3201000001", None, 10),
        ("３２０１０００００１", "3201000001", None, 10),
        ("320100000", None, "wrong_length", 9),
        ("13800000001", None, "wrong_length", 11),
        ("32010a0001", None, "has_letters", 9),
        ("我要查电费", None, "missing", 0),
        ("", None, "missing", 0),
        (None, None, "missing", 0),
    ],
)
def test_parse_account_number(typed, number, problem, digits):
    parsed = accounts.parse(typed)
    assert (parsed.number, parsed.problem, parsed.digits_given) == (number, problem, digits)


# --- identity ------------------------------------------------------------------

HOLDER = Account(ZHANG_WEI, "张伟", "13800000001", "光明路", "光明路18号3单元502", "normal")


@pytest.mark.parametrize(
    "answer",
    ["张伟", "户主张伟", "张伟。", "我叫张伟", "張偉", "0001", "尾号0001", "手机尾号是0001", "13800000001", "０００１"],
)
def test_identity_accepts_holder_name_or_phone(answer):
    assert identity.matches(HOLDER, answer)


@pytest.mark.parametrize(
    "answer",
    ["李娜", "张", "张伟伟", "0002", "13800000002", "", "0001 0002", "张伟李娜"],
)
def test_identity_rejects_wrong_answers_and_several_guesses(answer):
    assert not identity.matches(HOLDER, answer)


def test_identity_ignores_the_account_number_in_the_answer():
    assert identity.matches(HOLDER, "户号3201000001，尾号0001")


def test_identity_attempts_are_kept_per_account_and_cleared_by_success(database_url):
    attempts = identity.IdentityAttempts(database_url)
    now = datetime(2026, 11, 24, 10, 0)
    for number in (ZHANG_WEI, LI_NA):
        attempts.clear(number)
    assert attempts.attempts_left(ZHANG_WEI, now) == 3
    assert [attempts.record_failure(ZHANG_WEI, now) for _ in range(3)] == [2, 1, 0]
    assert attempts.attempts_left(ZHANG_WEI, now) == 0
    assert attempts.attempts_left(LI_NA, now) == 3  # another account is not touched
    assert attempts.attempts_left(ZHANG_WEI, now + identity.LOCK_WINDOW) == 3  # the window passed
    attempts.record_failure(LI_NA, now)
    attempts.clear(LI_NA)
    assert attempts.attempts_left(LI_NA, now) == 3
    attempts.clear(ZHANG_WEI)


# --- masking ---------------------------------------------------------------------


def test_mask_values():
    assert masking.mask_phone("13800000001") == "138****0001"
    assert masking.mask_account("3201000001") == "3201****01"
    assert masking.mask_name("张伟") == "张*"
    assert masking.mask_name("李娜娜") == "李**"
    assert masking.mask_name("") == ""


def test_mask_text_inside_sentences():
    masked = masking.mask_text("户号3201000001，电话13800000001，工单GD202611220007")
    assert masked == "户号3201****01，电话138****0001，工单GD202611220007"


def test_masking_filter_on_a_real_handler():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(masking.MaskingFilter())
    log = logging.getLogger(f"test.masking.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("户号%s 手机%s 查询电费", "3201000001", "13800000001")
        log.info("%d attempts left", 2)
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == ["INFO 户号3201****01 手机138****0001 查询电费", "INFO 2 attempts left"]


def test_install_log_masking_is_idempotent(monkeypatch):
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(root, "handlers", [handler])
    masking.install_log_masking()
    masking.install_log_masking()
    assert sum(isinstance(f, masking.MaskingFilter) for f in handler.filters) == 1


# --- text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("張偉的電費為什麼這麼高", "张伟的电费为什么这么高"),
        ("３２０１ＡＢｃ", "3201ABc"),
        ("户号 3201000001 查 电费", "户号3201000001查电费"),
        ("  hello   world  ", "hello world"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize(typed, normalized):
    assert text.normalize(typed) == normalized


@pytest.mark.parametrize(
    ("typed", "meaningful"),
    [("😀😀😀", False), ("？？？！！", False), ("...", False), ("   ", False), ("电", True), ("ok", True), ("1", True)],
)
def test_is_meaningful(typed, meaningful):
    assert text.is_meaningful(typed) is meaningful


# --- demo data (contract in architecture.md) ----------------------------------------


def test_demo_accounts(utility):
    expected = {
        ZHANG_WEI: ("张伟", "13800000001", "光明路", "normal"),
        LI_NA: ("李娜", "13800000002", "幸福里", "normal"),
        WANG_QIANG: ("王强", "13800000003", "光明路", "disconnected"),
    }
    for number, fields in expected.items():
        account = utility.account(number)
        assert (account.holder_name, account.phone, account.area, account.status) == fields
    assert utility.account("3201000009") is None
    assert [a.name for a in utility.areas()] == sorted(["光明路", "幸福里", "和平路"])


@pytest.mark.parametrize("number", [ZHANG_WEI, LI_NA, WANG_QIANG])
def test_demo_bills_and_readings_cover_fourteen_months(utility, number):
    bills = utility.bills(number, limit=24)
    readings = utility.readings(number, limit=24)
    assert len(bills) == len(readings) == MONTHS_OF_BILLS
    assert [b.period for b in bills] == [months.shift(_last_month(), -i) for i in range(MONTHS_OF_BILLS)]
    for bill in bills:
        assert bill.amount == tariff.amount_for(bill.usage_kwh)
    # consecutive meter readings differ by the month's usage
    for newer, older in pairwise(readings):
        assert newer.reading_kwh - older.reading_kwh == newer.usage_kwh


def test_demo_zhang_wei_latest_bill_far_higher_after_an_estimate(utility):
    latest, previous = utility.bills(ZHANG_WEI, limit=2)
    assert latest.usage_kwh > 3 * previous.usage_kwh
    assert previous.reading_estimated and not latest.reading_estimated
    assert not latest.paid
    assert [r.estimated for r in utility.readings(ZHANG_WEI, limit=2)] == [False, True]


def test_demo_wang_qiang_paid_yesterday_and_reconnection_overdue(utility):
    now = clock.now()
    yesterday = now.date() - timedelta(days=1)
    assert utility.account(WANG_QIANG).status == "disconnected"
    payment = utility.payments(WANG_QIANG, limit=1)[0]
    assert payment.paid_at.date() == yesterday
    assert payment.amount == sum((b.amount for b in utility.bills(WANG_QIANG, limit=3)), Decimal(0))
    assert all(b.paid_at == payment.paid_at for b in utility.bills(WANG_QIANG, limit=3))
    (order,) = utility.reconnection_orders(WANG_QIANG)
    assert order.status == "pending" and order.completed_at is None
    assert order.created_at >= payment.paid_at
    assert order.due_at < now  # overdue: the 24-hour promise has passed


def test_demo_reconnection_overdue_just_after_midnight(tmp_path):
    url = f"sqlite:///{tmp_path / 'midnight.db'}"
    upgrade(url)
    now = datetime(2026, 11, 24, 0, 10)
    ensure_demo_data(session_factory(url), now)
    (order,) = SqlUtilityData(url).reconnection_orders(WANG_QIANG)
    assert order.due_at < now


def test_demo_outages(utility):
    now = clock.now()
    (fault,) = utility.outages("光明路", now)
    assert (fault.kind, fault.status) == ("fault", "in_progress")
    assert fault.starts_at <= now < fault.ends_at
    assert fault.cause
    (planned,) = utility.outages("幸福里", now)
    assert (planned.kind, planned.status) == ("planned", "scheduled")
    assert planned.starts_at.date() == now.date() + timedelta(days=1)
    assert planned.starts_at < planned.ends_at
    assert utility.outages("和平路", now) == []
    assert utility.outages("火星路", now) == []


def test_ensure_demo_data_is_idempotent_on_the_same_day(database_url):
    sessions = session_factory(database_url)
    before = _counts(database_url)
    same_day = datetime.combine(seeded_on(sessions), time(12, 0))
    assert ensure_demo_data(sessions, same_day) is False
    assert _counts(database_url) == before
    assert before["bills"] == before["meter_readings"] == 3 * MONTHS_OF_BILLS


def test_ensure_demo_data_remakes_the_data_on_a_new_day(empty_database_url):
    url = empty_database_url
    upgrade(url)
    sessions = session_factory(url)
    first = datetime(2026, 3, 31, 10, 0)  # the next day starts a new month
    utility = SqlUtilityData(url)

    assert ensure_demo_data(sessions, first) is True
    assert ensure_demo_data(sessions, first) is False
    counts = _counts(url)
    paid_before = utility.payments(WANG_QIANG, limit=1)[0].paid_at
    fault_before = utility.outages("光明路", first)[0].starts_at

    second = first + timedelta(days=1)
    assert ensure_demo_data(sessions, second) is True
    assert seeded_on(sessions) == second.date()
    assert _counts(url) == counts
    assert utility.payments(WANG_QIANG, limit=1)[0].paid_at == paid_before + timedelta(days=1)
    assert utility.outages("光明路", second)[0].starts_at == fault_before + timedelta(days=1)
    assert utility.bills(ZHANG_WEI, limit=1)[0].period == date(2026, 3, 1)
    assert sorted(a.name for a in utility.areas()) == sorted(["光明路", "幸福里", "和平路"])


# --- billing -----------------------------------------------------------------------


def test_find_latest_bill(utility):
    lookup = billing.find_bill(utility, ZHANG_WEI, None)
    assert lookup.bill.period == _last_month() == lookup.latest
    assert lookup.bill.usage_kwh == Decimal(521)
    assert not lookup.not_billed_yet


def test_find_bill_of_a_month_not_billed_yet_gives_the_latest(utility):
    lookup = billing.find_bill(utility, ZHANG_WEI, months.shift(_last_month(), 1))
    assert lookup.not_billed_yet and lookup.bill.period == _last_month()


def test_find_bill_of_a_given_month(utility):
    month = months.shift(_last_month(), -3)
    lookup = billing.find_bill(utility, LI_NA, month)
    assert lookup.bill.period == month
    assert lookup.bill.account_number == LI_NA


def test_find_bill_of_a_month_not_on_record(utility):
    month = months.shift(_last_month(), -20)
    lookup = billing.find_bill(utility, ZHANG_WEI, month)
    assert lookup.bill is None and not lookup.not_billed_yet
    assert (lookup.earliest, lookup.latest) == (months.shift(_last_month(), -(MONTHS_OF_BILLS - 1)), _last_month())


def test_find_bill_of_an_unknown_account(utility):
    assert billing.find_bill(utility, "3201000009", None) == billing.BillLookup(None, False, None, None)


def test_explain_high_bill_of_zhang_wei(utility):
    facts = billing.explain_high_bill(utility, ZHANG_WEI, None)
    assert facts.bill.usage_kwh == Decimal(521) and facts.previous.usage_kwh == Decimal(118)
    assert facts.crossed_tier and (facts.previous_tier.number, facts.tier.number) == (1, 3)
    assert facts.catch_up_after_estimate
    assert facts.reasons() == ["estimated_catch_up", "tier_crossed"]
    assert facts.usage_change_kwh == Decimal(403)
    assert facts.year_ago.period == months.shift(facts.bill.period, -12)


def test_explain_bill_of_li_na_does_not_cross_a_tier(utility):
    facts = billing.explain_high_bill(utility, LI_NA, None)
    assert not facts.crossed_tier
    assert not facts.catch_up_after_estimate
    assert facts.tier.number == facts.previous_tier.number == 1
    assert 0 < facts.usage_change_kwh < 15
    assert facts.reasons() == ["usage_up"]


def test_explain_high_bill_without_data(utility):
    assert billing.explain_high_bill(utility, "3201000009", None) is None
    assert billing.explain_high_bill(utility, ZHANG_WEI, months.shift(_last_month(), -20)) is None


# --- outages -------------------------------------------------------------------------


def test_area_outages(utility):
    now = clock.now()
    guangming = outages.area_outages(utility, "光明路", now)
    assert guangming.current.kind == "fault" and guangming.planned == []
    assert not guangming.restoration_overdue

    xingfu = outages.area_outages(utility, "幸福里", now)
    assert xingfu.current is None
    assert [o.kind for o in xingfu.planned] == ["planned"]

    heping = outages.area_outages(utility, "和平路", now)
    assert (heping.current, heping.planned, heping.restoration_overdue) == (None, [], False)


def test_fault_outage_past_its_estimate_is_overdue(utility):
    fault = outages.area_outages(utility, "光明路", clock.now()).current
    later = outages.area_outages(utility, "光明路", fault.ends_at + timedelta(hours=1))
    assert later.current == fault
    assert later.restoration_overdue


@pytest.mark.parametrize(
    ("words", "area"),
    [
        ("光明路那边停电了吗", "光明路"),
        ("我住幸福里小区，怎么没电了", "幸福里"),
        ("和平", "和平路"),
        ("火星路停电了吗", None),
        ("", None),
        (None, None),
    ],
)
def test_known_area_in(utility, words, area):
    assert outages.known_area_in(utility, words) == area


# --- dialogue -------------------------------------------------------------------------


def _turn(*actions: str) -> list[dict]:
    return [{"event": "user", "text": "..."}, *({"event": "action", "name": a} for a in actions)]


def test_first_fallback_counts_one():
    events = [{"event": "action", "name": "action_listen"}, *_turn("action_fallback")]
    assert dialogue.consecutive_fallbacks(events) == 1


def test_fallback_after_a_fallback_counts_two():
    events = [*_turn("action_fallback", "action_listen"), *_turn("action_fallback")]
    assert dialogue.consecutive_fallbacks(events) == 2


def test_understood_turn_resets_the_count():
    events = [
        *_turn("action_fallback", "action_listen"),
        *_turn("action_fallback", "action_listen"),
        *_turn("utter_greet", "action_listen"),
        *_turn("action_fallback"),
    ]
    assert dialogue.consecutive_fallbacks(events) == 1


def test_bot_texts():
    events = [{"event": "bot", "text": "你好"}, {"event": "user", "text": "hi"}, {"event": "bot", "data": {}}]
    assert dialogue.bot_texts(events) == ["你好"]


# --- replies ----------------------------------------------------------------------------

# The values each reply is filled with (what the actions pass to render/say).
REPLY_VALUES: dict[str, set[str]] = {
    "actions_down": set(),  # said by nginx, so it can hold no value
    "servers_busy": set(),
    "handoff_live": {"number", "queue"},
    "queue_next": {"wait"},
    "queue_behind": {"ahead", "wait"},
    "wait_estimate": {"minutes"},
    "wait_unknown": {"due"},
    "handoff_callback": {"hours", "number", "within", "due", "contact"},
    "handoff_reminder": {"number"},
    "handoff_over": set(),
    "relay_failed": set(),
    "filed_handoff": {"contact", "due", "number", "within"},
    "agent_prefix": set(),
    "handed_back": {"number"},
    "handoff_resolved": {"number", "resolution"},
    "ask_satisfaction": set(),
    "satisfaction_thanks": {"score"},
    "satisfaction_low": {"score", "due"},
    "ask_account_number_bill": set(),
    "ask_account_number_outage": set(),
    "account_wrong_length": {"digits"},
    "account_looks_like_phone": set(),
    "account_has_letters": set(),
    "account_missing": set(),
    "account_not_found": {"account"},
    "identity_mismatch": {"left"},
    "identity_locked": set(),
    "bill_answer": {"account", "month", "amount", "usage", "due", "status"},
    "bill_paid": {"paid_on"},
    "bill_unpaid": {"due"},
    "bill_overdue": set(),
    "bill_not_issued": {"month", "latest"},
    "bill_month_missing": {"month", "earliest", "latest"},
    "bill_none": set(),
    "high_bill_compare": {"month", "usage", "amount", "previous_month", "previous_usage", "previous_amount", "change"},
    "high_bill_year_ago": {"year_ago_month", "year_ago_usage", "year_ago_amount"},
    "high_bill_estimated": {"previous_month", "previous_usage", "month", "total", "average"},
    "high_bill_tier": {"month", "bound", "tier", "price"},
    "high_bill_this_month_estimated": {"month"},
    "high_bill_next_step_estimated": set(),
    "high_bill_usage_up": {"change_kwh"},
    "high_bill_not_high": {"month"},
    "high_bill_next_step": set(),
    "readings": {"account", "count", "table"},
    "readings_estimated_note": set(),
    "readings_none": set(),
    "outage_fault": {"area", "since", "cause", "eta"},
    "outage_fault_no_eta": {"area", "since", "cause", "eta"},
    "outage_fault_overdue": {"area", "since", "cause", "eta"},
    "outage_planned_now": {"area", "cause", "window", "end"},
    "outage_planned_overdue": {"area", "cause", "window"},
    "outage_planned_upcoming": {"area", "window", "cause"},
    "outage_none": {"area"},
    "outage_unknown_place": {"place"},
    "service_unavailable": set(),
    "what_service": set(),
    "ask_rephrase": set(),
    "fallback_again": set(),
    "escalate_after_answer": set(),
    "ask_identity_proof": set(),
    "next_check": set(),
    "next_record_complaint": set(),
    "next_file_repair": set(),
    "next_handoff": set(),
    "next_escalate": set(),
    "next_reminded": {"number"},
    "next_ask_what": set(),
    "handoff_ack": set(),
    "fallback_handoff": set(),
    "ask_complaint_text": set(),
    "confirm_category": {"category"},
    "choose_category": set(),
    "ask_callback_phone": set(),
    "ask_place": set(),
    "ask_hazard_place": set(),
    "ask_preferred_time": set(),
    "confirm_phone_on_file": {"phone"},
    "confirm_phone_on_file_unverified": set(),
    "phone_not_understood": set(),
    "form_not_understood": set(),
    "ticket_form_left": set(),
    "filed_complaint": {"contact", "due", "number", "within"},
    "filed_hazard": {"contact", "due", "number", "place", "within"},
    "filed_power_quality": {"contact", "due", "number", "within"},
    "filed_fault": {"contact", "due", "number", "within"},
    "filed_meter_verification": {"contact", "due", "number", "preferred_time", "within"},
    "filed_reconnection_overdue": {"contact", "due", "number", "within"},
    "ticket_existing": {"contact", "due", "number", "status"},
    "ticket_store_down": set(),
    "contact_given": {"phone"},
    "contact_on_file": {"phone"},
    "contact_on_file_unverified": set(),
    "contact_none": set(),
    "filed_callback": {"contact", "due", "number", "within"},
    "callback_existing": {"contact", "due", "number"},
    "callback_phone_noted": {"contact", "due", "number"},
    "callback_no_phone": {"number"},
    "callback_phone_not_saved": {"number"},
    "offer_meter_verification": set(),
    "offer_fault_report": set(),
    "offer_declined_meter_verification": set(),
    "offer_declined_fault": set(),
    "reconnection_overdue": {"amount", "channel", "due", "overdue", "paid_at"},
    "reconnection_no_order": {"amount", "channel", "paid_at"},
    "reconnection_pending": {"amount", "due", "paid_at"},
    "reconnection_restored": {"completed"},
    "reconnection_not_disconnected": set(),
    "reconnection_unpaid": set(),
    "ticket_not_found": {"number"},
    "tickets_none": set(),
    "tickets_open": {"count", "lines"},
    "ticket_new": {"category", "created", "due", "number", "summary"},
    "ticket_assigned": {"category", "created", "due", "number", "summary"},
    "ticket_in_progress": {"category", "created", "due", "number", "summary"},
    "ticket_resolved": {"category", "created", "number", "resolution", "summary"},
    "ticket_closed": {"category", "created", "number", "summary"},
    "ticket_overdue": {"category", "created", "due", "number", "summary"},
}


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


@pytest.mark.parametrize("key", sorted(replies.catalogue()))
def test_reply_is_well_formed(key):
    variants = replies.catalogue()[key]
    assert variants and all(isinstance(v, str) and v.strip() for v in variants)
    assert key in REPLY_VALUES, f"document the values of the new reply {key!r} in REPLY_VALUES"
    for variant in variants:
        assert variant.format_map(defaultdict(lambda: "X"))
        assert _placeholders(variant) <= REPLY_VALUES[key]
    rendered = replies.render(key, **{name: "〈值〉" for name in REPLY_VALUES[key]})
    assert "{" not in rendered and "}" not in rendered


def test_render_fills_values():
    assert replies.render("account_wrong_length", digits=9) == "户号是10位数字，您发的是9位，麻烦核对一下再发给我？"


def test_render_avoids_a_variant_already_said():
    first, second = replies.catalogue()["ask_account_number_bill"]
    for _ in range(20):
        assert replies.render("ask_account_number_bill", avoid=[first]) == second
        assert replies.render("ask_account_number_bill", avoid=[second, "别的话"]) == first
    # everything said already: still answers with one of them
    assert replies.render("ask_account_number_bill", avoid=[first, second]) in (first, second)


# --- migrations -------------------------------------------------------------------------


def test_upgrade_creates_every_table_of_the_models(empty_database_url):
    upgrade(empty_database_url)
    engine = engine_for(empty_database_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_upgrade_is_repeatable_on_the_demo_database(database_url):
    upgrade(database_url)  # already at head: nothing to do, nothing lost
    tables = set(inspect(engine_for(database_url)).get_table_names())
    assert {t.__tablename__ for t in ALL_TABLES} | {"alembic_version"} <= tables
    assert _counts(database_url)["accounts"] == 3


def test_demo_data_is_never_loaded_over_real_accounts(tmp_path):
    url = f"sqlite:///{tmp_path / 'real.db'}"
    upgrade(url)
    sessions = session_factory(url)
    with sessions.begin() as session:
        session.add(models.Area(id=1, name="解放路", manager_name="某某", manager_phone="13900000099"))
        session.flush()
        session.add(
            models.Account(
                number="3209876543", holder_name="真实用户", phone="13900000098", area_id=1, address="解放路1号"
            )
        )
    with pytest.raises(NotADemoDatabase):
        ensure_demo_data(sessions, datetime(2026, 11, 24, 10, 0))
    assert SqlUtilityData(url).account("3209876543") is not None


def test_bill_status():
    bill = billing.Bill("3201000001", date(2026, 10, 1), Decimal(1), Decimal(1), date(2026, 11, 25), None, False)
    assert billing.bill_status(bill, date(2026, 11, 25)) == "unpaid"
    assert billing.bill_status(bill, date(2026, 11, 26)) == "overdue"
    paid = billing.Bill(
        "3201000001", date(2026, 10, 1), Decimal(1), Decimal(1), date(2026, 11, 25), datetime(2026, 11, 2), False
    )
    assert billing.bill_status(paid, date(2026, 12, 30)) == "paid"


@pytest.mark.parametrize(
    "kind,ends_in_hours,situation",
    [("fault", 2, "fault"), ("fault", None, "fault_no_eta"), ("fault", -1, "fault_overdue"),
     ("planned", 2, "planned_now"), ("planned", -1, "planned_overdue")],
)  # fmt: skip
def test_outage_situation(kind, ends_in_hours, situation):
    now = datetime(2026, 11, 24, 12, 0)
    ends = None if ends_in_hours is None else now + timedelta(hours=ends_in_hours)
    current = Outage("光明路", kind, now - timedelta(hours=3), ends, None, "in_progress")
    assert outages.AreaOutages("光明路", current, [], bool(ends and ends <= now)).situation == situation
    assert outages.AreaOutages("光明路", None, [], False).situation == "none"
