"""The dashboard's figures (bot/reports.py) on SQLite and PostgreSQL, their CSV files
(BOM, Chinese headers, the real numbers of filed tickets) and the page's scripts.

Each test files its tickets on days of a year no other test uses, so the counts are exact
on the shared session databases."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import date, datetime, time, timedelta

import pytest
import requests

from bot import clock, reports
from bot.console.dashboard import FIGURES, NO_FALLBACK_FIGURE, csv_body
from bot.db import session_factory
from bot.handoff import service
from bot.reports import Period
from bot.tickets.service import change_status, file_ticket, record_return_visit, update_ticket
from tests.ticket_drafts import draft


def _file(sessions, at: datetime, **changes) -> str:
    return file_ticket(sessions, draft(**changes), at).ticket.number


def _scenario(sessions, day0: date) -> None:
    """Five complaints and repairs over three days, and three conversations five days later,
    one of them handed to a person (the expected figures are in the tests)."""
    at = datetime.combine(day0, time(10, 0))
    a = _file(sessions, at, account_number="3201000001")  # 光明路, tariff_billing, normal
    b = _file(sessions, at, account_number="3201000003", frustration=2)  # 光明路, high
    c = _file(sessions, at, category="staff_conduct", place="和平路5号楼下")  # normal
    d = _file(
        sessions,
        at + timedelta(days=1),
        request_type="fault_repair",
        subject="hazard",
        category="outage",
        place="幸福里",
    )  # urgent, not a complaint
    e = _file(sessions, at + timedelta(days=1), category="staff_conduct", place="和平路")
    change_status(sessions, a, "resolved", "agent:t", at + timedelta(hours=1), note="已处理")  # in time
    change_status(sessions, b, "resolved", "agent:t", at + timedelta(days=3), note="已处理")  # late
    record_return_visit(sessions, a, "agent:t", at + timedelta(days=4), satisfaction=4)
    record_return_visit(sessions, b, "agent:t", at + timedelta(days=4), satisfaction=2)
    update_ticket(sessions, c, "agent:t", at, unit="城东供电所")
    update_ticket(sessions, e, "agent:t", at, unit="城东供电所", substantiated=True)
    assert d  # counted, though not a complaint

    later = at + timedelta(days=5)
    handed = f"report-{uuid.uuid4().hex[:8]}"
    for conversation in (handed, f"report-{uuid.uuid4().hex[:8]}", f"report-{uuid.uuid4().hex[:8]}"):
        service.record_conversation(sessions, conversation, "socketio", later)
    _file(sessions, later, subject="handoff", request_type="enquiry", category="service_channel",
          conversation_id=handed)


def test_figures_on_each_database(database_url):
    sessions = session_factory(database_url)
    day0 = date(2001, 3, 1)
    _scenario(sessions, day0)
    period = Period(day0, day0 + timedelta(days=9))
    day = [day0 + timedelta(days=i) for i in range(10)]
    now = datetime(2001, 4, 1)

    assert reports.tickets_by_category(sessions, period) == [
        (day[0], "staff_conduct", 1),
        (day[0], "tariff_billing", 2),
        (day[1], "outage", 1),
        (day[1], "staff_conduct", 1),
        (day[5], "service_channel", 1),
    ]
    assert sorted(reports.tickets_by_priority(sessions, period)) == sorted(
        [
            (day[0], "high", 1),
            (day[0], "normal", 2),
            (day[1], "normal", 1),
            (day[1], "urgent", 1),
            (day[5], "normal", 1),
        ]
    )
    assert reports.sla_breaches(sessions, period, now) == [
        (day[0], 1, 1),  # b: due at noon, resolved three days later
        (day[1], 3, 2),  # a resolved in time; c and d still open
        (day[2], 1, 1),  # e
        (day[6], 1, 1),  # the handoff's ticket
    ]
    assert reports.sla_breaches(sessions, period, datetime.combine(day[1], time(9, 0))) == [(day[0], 1, 1)]
    assert reports.satisfaction_scores(sessions, period) == [(1, 0), (2, 1), (3, 0), (4, 1), (5, 0)]
    assert reports.satisfaction_by_day(sessions, period) == [(day[0], 4.0, 1), (day[3], 2.0, 1)]
    containment = reports.containment(sessions, period)
    assert containment == [(day[5], 3, 1)]
    assert containment[0].contained == pytest.approx(2 / 3)
    assert {tuple(r) for r in reports.hot_spots(sessions, period)} == {("光明路", 0, 2), ("和平路", 0, 2)}
    assert reports.hot_spots(sessions, period, repeated=3) == []
    assert reports.complaints_by_unit(sessions, period) == [("城东供电所", 2, 1)]
    assert reports.tickets_by_category(sessions, Period(day0 - timedelta(days=9), day0 - timedelta(days=1))) == []


def test_hot_spots_count_outages_of_the_utility_data(database_url):
    sessions = session_factory(database_url)
    demo_outages = reports.hot_spots(sessions, Period.last_days(clock.today(), 30), repeated=1)
    assert ("光明路", 2) in [(r.area, r.outages) for r in demo_outages]  # the demo's fault now and 20 days ago


def _csv(response: requests.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="')
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(response.content[3:].decode("utf-8"))))


def test_csv_exports_have_a_bom_chinese_headers_and_the_numbers(console):
    day0 = date(2002, 3, 1)
    _scenario(console.sessions, day0)
    supervisor = console.signed_in("supervisor")
    query = "?start=2002-03-01&end=2002-03-10"

    categories = _csv(supervisor.get(f"/dashboard/categories.csv{query}"))
    assert categories[0] == ["日期", "类别", "工单数"]
    assert ["2002-03-01", "电价电费", "2"] in categories
    assert ["2002-03-01", "服务行为", "1"] in categories
    assert ["2002-03-02", "停电问题", "1"] in categories
    assert len(categories) == 6

    priorities = _csv(supervisor.get(f"/dashboard/priorities.csv{query}"))
    assert priorities[0] == ["日期", "优先级", "工单数"]
    assert ["2002-03-01", "普通", "2"] in priorities and ["2002-03-02", "紧急", "1"] in priorities

    sla = _csv(supervisor.get(f"/dashboard/sla.csv{query}"))
    assert sla[0] == ["日期", "到期工单数", "超时工单数", "超时率"]
    assert ["2002-03-02", "3", "2", "66.7%"] in sla

    assert _csv(supervisor.get(f"/dashboard/satisfaction.csv{query}"))[1:] == [
        ["1", "0"], ["2", "1"], ["3", "0"], ["4", "1"], ["5", "0"]
    ]
    assert _csv(supervisor.get(f"/dashboard/containment.csv{query}")) == [
        ["日期", "会话数", "转人工会话数", "机器人独立解决率"],
        ["2002-03-06", "3", "1", "66.7%"],
    ]
    hot = _csv(supervisor.get(f"/dashboard/hotspots.csv{query}"))
    assert hot[0] == ["区域", "停电次数", "投诉数"] and sorted(hot[1:]) == [["光明路", "0", "2"], ["和平路", "0", "2"]]
    assert _csv(supervisor.get(f"/dashboard/units.csv{query}")) == [
        ["被投诉人员/单位", "投诉数", "属实数"],
        ["城东供电所", "2", "1"],
    ]
    for key, figure in FIGURES.items():
        assert _csv(supervisor.get(f"/dashboard/{key}.csv{query}"))[0] == list(figure.columns)


def test_chart_json_has_one_value_per_day(console):
    day0 = date(2003, 6, 1)
    _scenario(console.sessions, day0)
    supervisor = console.signed_in("supervisor")
    chart = supervisor.get("/api/dashboard/categories?start=2003-06-01&end=2003-06-07").json()
    assert chart["labels"] == [f"2003-06-0{i}" for i in range(1, 8)]
    tariff = next(d for d in chart["datasets"] if d["label"] == "电价电费")
    assert tariff["data"] == [2, 0, 0, 0, 0, 0, 0]
    assert supervisor.get("/api/dashboard/nothing").status_code == 404


def test_without_the_event_stream_the_fallback_figure_says_why_it_is_empty(console):
    supervisor = console.signed_in("supervisor")
    assert 'id="figure-fallbacks"' in supervisor.get("/dashboard").text
    chart = supervisor.get("/api/dashboard/fallbacks").json()
    assert chart["note"] == NO_FALLBACK_FIGURE  # the page shows it instead of "no data"
    assert chart["datasets"][0]["data"] == [None] * 30
    assert _csv(supervisor.get("/dashboard/fallbacks.csv")) == [list(FIGURES["fallbacks"].columns)]


def test_default_period_is_the_last_30_days(console):
    supervisor = console.signed_in("supervisor")
    chart = supervisor.get("/api/dashboard/sla").json()
    assert len(chart["labels"]) == 30
    assert chart["end"] == chart["labels"][-1]


def test_csv_cells_that_excel_would_run_are_quoted():
    body = csv_body(("被投诉人员/单位", "投诉数"), [("=HYPERLINK(\"http://x\")", 1), ("-1+1", 2), ("城东", 3)])
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[1][0] == "'=HYPERLINK(\"http://x\")"
    assert rows[2][0] == "'-1+1"
    assert rows[3][0] == "城东"


def test_dashboard_loads_only_same_origin_scripts(console):
    supervisor = console.signed_in("supervisor")
    page = supervisor.get("/dashboard")
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    scripts = re.findall(r"<script\b([^>]*)>", page.text)
    sources = [re.search(r'src="([^"]+)"', attributes)[1] for attributes in scripts]
    assert len(sources) == len(scripts)  # no inline script
    assert "/static/vendor/chart.umd.js" in sources
    assert all(source.startswith("/static/") for source in sources)
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    for source in sources:
        assert requests.get(console.url + source, timeout=10).status_code == 200
    chart = requests.get(console.url + "/static/vendor/chart.umd.js", timeout=10).text
    assert chart.startswith("/*!\n * Chart.js v4.4.6")
    assert "导出 CSV" in page.text and 'href="/dashboard/categories.csv?start=' in page.text
