"""The conversation view: the transcript (escaped, live), replies reaching the Rasa API or
failing visibly, who may act, personal data behind "显示", notes, fields, resolving,
handing back, and the return visits."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

from bot import clock
from bot.handoff import service
from bot.tickets.records import TranscriptLine
from bot.tickets.service import change_status, find_ticket, record_return_visit, ticket_events

HOSTILE_DESCRIPTION = '<script>alert("描述")</script>电费太高'
HOSTILE_MESSAGE = "<img src=x onerror=alert(1)>我还在等"


def _claimed(console, role: str = "agent", display_name: str | None = None, **changes):
    browser = console.signed_in(role, display_name)
    number, conversation = console.handed_over(**changes)
    assert browser.post(f"/tickets/{number}/claim").status_code == 303
    return browser, number, conversation


def _transcript(page: str) -> str:
    return re.search(r'<ol id="transcript".*?</ol>', page, re.S)[0]


def test_customer_text_is_escaped_in_the_page_source(console):
    transcript = [TranscriptLine("customer", "<script>alert('前')</script>", clock.now())]
    agent, number, conversation = _claimed(console, description=HOSTILE_DESCRIPTION, transcript=transcript)
    service.customer_said(console.sessions, conversation, HOSTILE_MESSAGE, clock.now())
    for page in (agent.get(f"/tickets/{number}").text, agent.get("/").text):
        assert "<script>alert" not in page
        assert "<img src=x" not in page
    page = agent.get(f"/tickets/{number}").text
    assert "&lt;script&gt;alert(&#34;描述&#34;)&lt;/script&gt;电费太高" in page
    assert "&lt;img src=x onerror=alert(1)&gt;我还在等" in page
    assert "&lt;script&gt;alert(&#39;前&#39;)&lt;/script&gt;" in page


def test_transcript_shows_the_bot_conversation_then_the_handoff(console):
    transcript = [
        TranscriptLine("customer", "我要转人工", clock.now()),
        TranscriptLine("bot", "好的，正在为您转接人工客服", clock.now()),
    ]
    agent, number, conversation = _claimed(console, transcript=transcript)
    service.customer_said(console.sessions, conversation, "人呢？", clock.now())
    lines = _transcript(agent.get(f"/tickets/{number}").text)
    assert re.search(r'<li class="line customer before-handoff">.*?我要转人工', lines, re.S)
    assert re.search(r'<li class="line bot before-handoff">.*?正在为您转接', lines, re.S)
    assert re.search(r'<li class="line customer" data-id="\d+">.*?人呢？', lines, re.S)
    assert lines.index("我要转人工") < lines.index("以下为转人工后的对话") < lines.index("人呢？")


def test_reply_reaches_the_rasa_api_and_the_transcript(console):
    agent, number, conversation = _claimed(console, display_name="郑坐席")
    console.rasa.up = True
    response = agent.post_json(f"/tickets/{number}/reply", {"text": "您好，我是郑坐席，马上为您查询"})
    assert response.status_code == 200, response.text
    message = response.json()["message"]
    assert message["speaker"] == "agent" and message["error"] is None
    assert message["author_name"] == "郑坐席"
    assert (f"/conversations/{conversation}/trigger_intent", {"name": "EXTERNAL_agent_reply"}) in console.rasa.calls
    lines = _transcript(agent.get(f"/tickets/{number}").text)
    assert re.search(r'<li class="line agent" data-id="\d+">.*?马上为您查询', lines, re.S)
    assert find_ticket(console.sessions, number).status == "in_progress"


def test_a_reply_the_customer_could_not_get_is_shown_with_a_retry(console):
    agent, number, conversation = _claimed(console)
    console.rasa.up = False
    try:
        response = agent.post_json(f"/tickets/{number}/reply", {"text": "请稍等"})
        assert response.status_code == 200
        assert response.json()["message"]["error"]
        assert response.json()["notice"] == "reply_failed"
        page = agent.get(f"/tickets/{number}").text
        assert re.search(r'<li class="line agent failed" data-id="\d+">.*?发送失败', page, re.S)
        assert re.search(r'<form method="post" action="/tickets/\w+/retry" id="retry-form" class="retry-form">', page)
        assert agent.post(f"/tickets/{number}/retry").headers["Location"].endswith("notice=reply_failed")
    finally:
        console.rasa.up = True
    calls = len(console.rasa.calls)
    assert agent.post(f"/tickets/{number}/retry").headers["Location"].endswith("notice=retried")
    assert console.rasa.calls[calls:] == [
        (f"/conversations/{conversation}/trigger_intent", {"name": "EXTERNAL_agent_reply"})
    ]


def test_another_agent_sees_it_read_only(console):
    holder, number, _conversation = _claimed(console, display_name="冯坐席")
    other = console.signed_in("agent")
    page = other.get(f"/tickets/{number}").text
    assert "该会话由 冯坐席 处理，您只能查看" in page
    for control in ('id="reply-text"', 'id="resolve"', 'id="hand-back"', 'id="note-add"', 'id="pii-show"'):
        assert control not in page
    before = service.messages(console.sessions, number)
    refused = other.post_json(f"/tickets/{number}/reply", {"text": "我来抢答"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "该会话由 冯坐席 处理，您只能查看"
    assert other.post(f"/tickets/{number}/resolve", {"resolution": "结了"}).status_code == 403
    assert other.post(f"/tickets/{number}/notes", {"text": "备注"}).status_code == 403
    assert service.messages(console.sessions, number) == before
    assert find_ticket(console.sessions, number).status != "resolved"
    assert 'id="reply-text"' in holder.get(f"/tickets/{number}").text


def test_supervisor_may_answer_in_someone_elses_conversation(console):
    _holder, number, _conversation = _claimed(console)
    supervisor = console.signed_in("supervisor", "陈班长")
    assert 'id="reply-text"' in supervisor.get(f"/tickets/{number}").text
    response = supervisor.post_json(f"/tickets/{number}/reply", {"text": "我是班长，您的问题我们会优先处理"})
    assert response.status_code == 200
    assert response.json()["message"]["author_name"] == "陈班长"


def test_personal_data_is_masked_until_shown_and_the_view_is_recorded(console):
    agent, number, _conversation = _claimed(console, account_number="3201000001", callback_phone="13900001111")
    page = agent.get(f"/tickets/{number}").text
    assert "3201****01" in page and "3201000001" not in page
    assert "139****1111" in page and "13900001111" not in page
    assert "张*" in page and "张伟" not in page
    response = agent.post_json(f"/tickets/{number}/personal-data")
    assert response.status_code == 200
    values = response.json()["values"]
    assert values["account_number"] == "3201000001"
    assert values["holder_name"] == "张伟"
    assert values["phone"] == "13800000001"
    assert values["callback_phone"] == "13900001111"
    shown = [e for e in ticket_events(console.sessions, number) if e.kind == "pii_shown"]
    assert [e.actor for e in shown] == [f"agent:{agent.user.username}"]
    assert shown[0].detail["what"] == "户号、回电号码、户名、预留电话、地址"
    assert "查看客户信息" in agent.get(f"/tickets/{number}").text  # in the history shown


def test_account_context_shows_bills_outages_and_other_tickets(console):
    other = console.ticket(account_number="3201000001", category="outage", description="停电了")
    agent, number, _conversation = _claimed(console, account_number="3201000001")
    page = agent.get(f"/tickets/{number}").text
    bills = re.search(r'<table id="bills".*?</table>', page, re.S)[0]
    assert bills.count("<tr>") == 4  # the header and the last three bills
    assert "10千伏线路故障" in re.search(r'<ul id="outages".*?</ul>', page, re.S)[0]
    assert other in re.search(r'<ul id="open-tickets".*?</ul>', page, re.S)[0]


def test_notes_and_fields_are_recorded_with_the_agent(console):
    agent, number, _conversation = _claimed(console)
    assert agent.post(f"/tickets/{number}/notes", {"text": "已联系供电所"}).status_code == 303
    fields = {"category": "staff_conduct", "priority": "high", "substantiated": "yes", "unit": "城东供电所"}
    saved = agent.post(f"/tickets/{number}/fields", fields)
    assert saved.headers["Location"] == f"/tickets/{number}?notice=updated"
    ticket = find_ticket(console.sessions, number)
    assert (ticket.category, ticket.priority, ticket.substantiated, ticket.unit) == (
        "staff_conduct",
        "high",
        True,
        "城东供电所",
    )
    events = ticket_events(console.sessions, number)
    assert any(e.kind == "note" and e.detail["text"] == "已联系供电所" for e in events)
    assert all(e.actor == f"agent:{agent.user.username}" for e in events if e.kind in ("note", "updated"))
    assert "已联系供电所" in agent.get(f"/tickets/{number}").text
    assert agent.post(f"/tickets/{number}/fields", {"category": "no-such"}).status_code == 400


def test_resolve_tells_the_customer_and_the_return_visit_closes_it(console):
    agent, number, conversation = _claimed(console)
    response = agent.post(f"/tickets/{number}/resolve", {"resolution": "已为您核实电费，退还多收的12元"})
    assert response.headers["Location"] == f"/tickets/{number}?notice=resolved"
    ticket = find_ticket(console.sessions, number)
    assert ticket.status == "resolved" and ticket.resolution == "已为您核实电费，退还多收的12元"
    resolved = (f"/conversations/{conversation}/trigger_intent", {"name": "EXTERNAL_handoff_resolved"})
    assert resolved in console.rasa.calls
    assert not service.handoff_for_ticket(console.sessions, number).is_live

    visits = agent.get("/visits").text
    row = re.search(rf'<tr class="visit[^"]*" data-ticket="{number}">.*?</tr>', visits, re.S)[0]
    assert "退还多收的12元" in row
    assert agent.post(f"/visits/{number}", {"satisfied": "yes", "notes": "客户满意"}).status_code == 303
    assert find_ticket(console.sessions, number).status == "closed"
    assert f'data-ticket="{number}"' not in agent.get("/visits").text
    assert agent.post(f"/visits/{number}", {"satisfied": "yes"}).status_code == 409


def test_unsatisfied_return_visit_reopens_the_ticket(console):
    agent, number, _conversation = _claimed(console)
    agent.post(f"/tickets/{number}/resolve", {"resolution": "已处理"})
    assert agent.post(f"/visits/{number}", {"satisfied": "no", "notes": "还是没解决"}).status_code == 303
    assert find_ticket(console.sessions, number).status == "in_progress"
    assert agent.post(f"/visits/{number}", {"notes": "没选"}).status_code in (400, 409)


def test_hand_back_gives_the_conversation_to_the_bot(console):
    agent, number, conversation = _claimed(console)
    response = agent.post(f"/tickets/{number}/hand-back")
    assert response.headers["Location"] == f"/tickets/{number}?notice=handed_back"
    assert service.handoff_for_ticket(console.sessions, number).end_reason == "handed_back"
    assert (f"/conversations/{conversation}/trigger_intent", {"name": "EXTERNAL_hand_back"}) in console.rasa.calls
    again = agent.post_json(f"/tickets/{number}/hand-back")
    assert again.status_code == 409  # nothing live to hand back
    assert "不在线上会话中" in again.json()["error"]
    assert 'id="hand-back"' not in agent.get(f"/tickets/{number}").text


def test_new_customer_messages_arrive_on_the_stream(console):
    agent, number, conversation = _claimed(console)
    service.customer_said(console.sessions, conversation, "第一句", clock.now())
    last = service.messages(console.sessions, number)[-1].id
    path = f"{console.url}/api/tickets/{number}/stream?after={last}"
    with agent.http.get(path, stream=True, timeout=20) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        service.customer_said(console.sessions, conversation, "<b>第二句</b>", clock.now())
        deadline = time.monotonic() + 15
        name = None
        for line in response.iter_lines(decode_unicode=True):
            assert time.monotonic() < deadline, "the customer's message never reached the stream"
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "message":
                message = json.loads(line[6:])
                assert message["text"] != "第一句"  # already on the page: not sent again
                if message["text"] == "<b>第二句</b>":
                    assert message["speaker"] == "customer"
                    break


def test_static_scripts_never_write_html(console):
    for name in ("common.js", "queue.js", "ticket.js", "dashboard.js"):
        script = console_static(console, f"/static/js/{name}")
        assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script


def console_static(console, path: str) -> str:
    import requests

    response = requests.get(console.url + path, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(("application/javascript", "text/javascript"))
    return response.text


def test_overdue_return_visits_come_first_and_stand_out(console):
    agent = console.signed_in("agent")
    late = console.ticket()
    change_status(console.sessions, late, "resolved", "agent:t", clock.now() - timedelta(days=20), note="早已处理")
    record_return_visit(console.sessions, late, "customer", clock.now() - timedelta(days=19), satisfaction=3)
    fresh = console.ticket()
    change_status(console.sessions, fresh, "resolved", "agent:t", clock.now(), note="刚处理")
    page = agent.get("/visits").text
    late_row = re.search(rf'<tr class="visit overdue" data-ticket="{late}">.*?</tr>', page, re.S)[0]
    assert "已逾期" in late_row and "3/5" in late_row
    assert re.search(rf'<tr class="visit" data-ticket="{fresh}">', page)
    assert page.index(late) < page.index(fresh)
