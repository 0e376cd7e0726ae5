"""Return visits (回访): resolved tickets due a call to ask whether the customer is
satisfied, the soonest due first. A satisfied customer closes the ticket; an unsatisfied
one reopens it for another round."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from bot.console import staff
from bot.console.web import allow, console, now, refuse, render, run, see_other, user_of
from bot.handoff import service
from bot.masking import mask_phone
from bot.tickets.errors import IllegalTransition

NOTICES = {"closed": "回访完成，工单已归档", "reopened": "客户不满意，工单已重新打开处理"}
MAX_NOTES = 2000


@allow("queue")
async def visits_page(request: Request) -> HTTPResponse:
    sessions = console(request).sessions
    moment = now()
    tickets = await run(service.return_visits, sessions, moment)
    names = await run(staff.display_names, sessions)
    visits = [
        {
            "ticket": ticket,
            "overdue": ticket.return_visit_due_at is not None and ticket.return_visit_due_at < moment,
            "phone": mask_phone(ticket.callback_phone) if ticket.callback_phone else None,
            "handled_by": names.get(ticket.assigned_agent, ticket.assigned_agent) if ticket.assigned_agent else None,
        }
        for ticket in tickets
    ]
    notice = NOTICES.get(request.args.get("notice", ""))
    return render(request, "visits.html", visits=visits, notice=notice)


@allow("queue")
async def close_visit(request: Request, number: str) -> HTTPResponse:
    satisfied = {"yes": True, "no": False}.get(request.form.get("satisfied", ""))
    notes = (request.form.get("notes") or "").strip()
    if satisfied is None:
        return refuse(request, 400, "请选择客户是否满意", back="/visits")
    if len(notes) > MAX_NOTES:
        return refuse(request, 400, f"回访记录不超过 {MAX_NOTES} 字", back="/visits")
    try:
        await run(
            service.close_return_visit,
            console(request).sessions,
            number,
            user_of(request).username,
            now(),
            satisfied=satisfied,
            notes=notes,
        )
    except IllegalTransition:
        return refuse(request, 409, "该工单已回访过或状态已变化，请刷新后再看", back="/visits")
    return see_other(f"/visits?notice={'closed' if satisfied else 'reopened'}")


def add_routes(app: Sanic) -> None:
    app.add_route(visits_page, "/visits", methods=["GET"], name="visits_page")
    app.add_route(close_visit, "/visits/<number>", methods=["POST"], name="close_visit")
