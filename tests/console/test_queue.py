"""The queue: its JSON, its live stream, the page, and the claim race (exactly one of two
agents clicking 接单 at the same instant wins) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta
from datetime import time as clock_time

import requests

from bot import clock
from bot.console import labels
from bot.handoff import service
from bot.tickets.service import file_ticket, find_ticket, ticket_events
from tests.ticket_drafts import draft


def _item(items: list[dict], number: str) -> dict:
    return next(item for item in items if item["number"] == number)


def test_queue_json_lists_open_tickets_in_chinese(console):
    agent = console.signed_in("agent")
    number, _conversation = console.handed_over(
        description="客户要求人工：停电三天了还没来电", frustration=3, category="outage"
    )
    response = agent.get("/api/queue")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    item = _item(response.json()["items"], number)
    assert item["category_name"] == "停电问题"
    assert item["priority_name"] in ("紧急", "高", "普通")
    assert item["priority_name"] == "高"  # frustration 3
    assert item["state"] == "waiting" and item["state_name"] == "等待接入"
    assert item["frustration_word"] == "非常愤怒"
    assert item["holder"] is None
    assert item["live"] is True


def test_queue_is_sorted_by_priority_then_deadline(console):
    agent = console.signed_in("agent")
    urgent = console.ticket(subject="hazard", request_type="fault_repair", description="电线掉在地上冒火花")
    normal = console.ticket()
    high = console.ticket(frustration=2)
    numbers = [item["number"] for item in agent.get("/api/queue").json()["items"]]
    assert numbers.index(urgent) < numbers.index(high) < numbers.index(normal)
    priorities = [item["priority"] for item in agent.get("/api/queue").json()["items"]]
    order = {"urgent": 0, "high": 1, "normal": 2}
    assert priorities == sorted(priorities, key=order.get)


def test_queue_page_shows_rows_with_claim_buttons_and_countdowns(console):
    agent = console.signed_in("agent")
    number = console.ticket()
    page = agent.get("/")
    assert page.status_code == 200
    assert 'id="queue"' in page.text
    row = re.search(rf'<tr class="queue-item[^"]*" data-ticket="{number}">.*?</tr>', page.text, re.S)[0]
    assert 'class="claim primary"' in row and "接单" in row
    assert re.search(r'class="sla" data-due="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d">剩余 \d\d:\d\d:\d\d<', row)
    assert 'src="/static/js/queue.js"' in page.text


def test_queue_stream_sends_new_tickets_as_they_are_filed(console):
    agent = console.signed_in("agent")
    with agent.http.get(console.url + "/api/queue/stream", stream=True, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = _events(response)
        first = next(events)
        assert first["now"]
        number = console.ticket(description="新来的投诉")
        deadline = time.monotonic() + 15
        while True:
            snapshot = next(events)
            if any(item["number"] == number for item in snapshot["items"]):
                break
            assert time.monotonic() < deadline, "the new ticket never reached the stream"


def _events(response: requests.Response):
    """The data of each `queue` event of a stream, as it arrives."""
    name = None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name == "queue":
            yield json.loads(line[len("data: ") :])


def test_claim_opens_the_conversation(console):
    agent = console.signed_in("agent", "赵坐席")
    number, _conversation = console.handed_over()
    response = agent.post(f"/tickets/{number}/claim")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/tickets/{number}?notice=claimed"
    assert find_ticket(console.sessions, number).assigned_agent == agent.user.username
    assert service.handoff_for_ticket(console.sessions, number).status == "active"
    assert "claimed" in [e.kind for e in ticket_events(console.sessions, number)]
    item = _item(agent.get("/api/queue").json()["items"], number)
    assert item["holder_name"] == "赵坐席" and item["mine"] is True


def test_two_agents_claiming_at_the_same_instant_one_wins(any_console):
    console = any_console
    first, second = console.signed_in("agent", "钱一"), console.signed_in("agent", "孙二")
    for _round in range(3):
        number, _conversation = console.handed_over()
        barrier = threading.Barrier(2)
        answers: dict[str, requests.Response] = {}

        def claim(browser, answers=answers, number=number, barrier=barrier) -> None:
            barrier.wait()
            answers[browser.user.username] = browser.post_json(f"/tickets/{number}/claim")

        threads = [threading.Thread(target=claim, args=(b,)) for b in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statuses = sorted(answer.status_code for answer in answers.values())
        assert statuses == [200, 409], {name: (a.status_code, a.text) for name, a in answers.items()}
        winner = next(name for name, a in answers.items() if a.status_code == 200)
        loser = next(a for a in answers.values() if a.status_code == 409)
        winner_name = {first.user.username: "钱一", second.user.username: "孙二"}[winner]
        assert loser.json()["error"] == f"该会话已被 {winner_name} 接单"
        assert find_ticket(console.sessions, number).assigned_agent == winner
        claims = [e for e in ticket_events(console.sessions, number) if e.kind == "claimed"]
        assert len(claims) == 1


def test_loser_of_a_form_claim_sees_who_has_it(console):
    first, second = console.signed_in("agent", "周三"), console.signed_in("agent", "吴四")
    number = console.ticket()
    assert first.post(f"/tickets/{number}/claim").status_code == 303
    late = second.post(f"/tickets/{number}/claim")
    assert late.status_code == 409
    assert "该会话已被 周三 接单" in late.text
    assert f'href="/tickets/{number}"' in late.text


def test_claim_of_an_unknown_ticket_is_404(console):
    agent = console.signed_in("agent")
    response = agent.post_json("/tickets/GD199901019999/claim")
    assert response.status_code == 404
    assert response.json()["error"] == "找不到这个页面或工单"


def test_queue_leaves_out_resolved_tickets(console):
    agent = console.signed_in("agent")
    number = console.ticket()
    service.claim(console.sessions, number, agent.user.username, clock.now())
    service.resolve(console.sessions, number, agent.user.username, "已核实处理", clock.now())
    assert number not in [item["number"] for item in agent.get("/api/queue").json()["items"]]


def test_overdue_tickets_say_by_how_much(console):
    agent = console.signed_in("agent")
    old = file_ticket(console.sessions, draft(), clock.now() - timedelta(days=2, hours=3)).ticket.number
    row = re.search(rf'<tr class="queue-item[^"]*" data-ticket="{old}">.*?</tr>', agent.get("/").text, re.S)[0]
    assert re.search(r'<span class="sla overdue" data-due="[^"]+">已超时 1天\d+小时</span>', row)


def test_callback_outside_service_hours_shows_as_such(console, monkeypatch):
    monkeypatch.setenv("HANDOFF_HOURS", "00:00-00:01" if clock.now().time() >= clock_time(0, 2) else "12:00-12:01")
    agent = console.signed_in("agent")
    number, _conversation = console.handed_over()
    item = _item(agent.get("/api/queue").json()["items"], number)
    assert (item["state"], item["state_name"], item["live"]) == ("callback", "待回电", False)


def test_sla_words():
    now = datetime(2026, 11, 24, 10, 0)
    assert labels.sla_text(now + timedelta(minutes=45), now) == "剩余 00:45:00"
    assert labels.sla_text(now - timedelta(seconds=30), now) == "已超时 1分钟"
    assert labels.sla_text(now - timedelta(minutes=125), now) == "已超时 2小时5分钟"
    assert labels.sla_text(now - timedelta(days=3), now) == "已超时 3天"
