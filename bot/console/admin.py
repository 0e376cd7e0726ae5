"""Staff accounts (用户管理, admins only): create, change role, deactivate or activate,
reset a password; and the latest entries of the audit log."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from bot.console import staff
from bot.console.web import allow, console, now, refuse, render, run, see_other, user_of

NOTICES = {
    "created": "用户已创建",
    "role": "角色已修改",
    "activated": "用户已启用",
    "deactivated": "用户已停用，其登录已全部失效",
    "password": "密码已重置，该用户需用新密码重新登录",
}
BACK = "/admin/users"


@allow("users")
async def users_page(request: Request) -> HTTPResponse:
    sessions = console(request).sessions
    people = await run(staff.users, sessions)
    audit = await run(staff.audit_log, sessions, 50)
    notice = NOTICES.get(request.args.get("notice", ""))
    return render(request, "users.html", people=people, audit=audit, roles=staff.ROLES, notice=notice, now=now())


def _password(request: Request) -> str | HTTPResponse:
    password = request.form.get("password") or ""
    if password != (request.form.get("password_again") or ""):
        return refuse(request, 400, "两次输入的密码不一致", back=BACK)
    try:
        staff.check_password(password)
    except staff.WeakPassword:
        return refuse(request, 400, f"密码至少 {staff.MIN_PASSWORD} 位（最多 {staff.MAX_PASSWORD} 位）", back=BACK)
    return password


@allow("users")
async def create(request: Request) -> HTTPResponse:
    password = _password(request)
    if not isinstance(password, str):
        return password
    try:
        await run(
            staff.create_user,
            console(request).sessions,
            request.form.get("username") or "",
            request.form.get("display_name") or "",
            request.form.get("role") or "",
            password,
            now(),
            actor=user_of(request).username,
        )
    except staff.InvalidUsername:
        return refuse(request, 400, "用户名须为 2–32 位小写字母、数字或 _ . -", back=BACK)
    except staff.InvalidRole:
        return refuse(request, 400, "请选择角色", back=BACK)
    except staff.UsernameTaken:
        return refuse(request, 409, "该用户名已存在", back=BACK)
    return see_other(f"{BACK}?notice=created")


def _not_self(request: Request, staff_id: int) -> HTTPResponse | None:
    if staff_id == user_of(request).id:
        return refuse(request, 400, "不能停用自己，也不能修改自己的角色（请另一位管理员操作）", back=BACK)
    return None


@allow("users")
async def change_role(request: Request, staff_id: int) -> HTTPResponse:
    refused = _not_self(request, staff_id)
    if refused:
        return refused
    try:
        await run(
            staff.change_role, console(request).sessions, staff_id, request.form.get("role") or "",
            user_of(request).username, now(),
        )
    except staff.InvalidRole:
        return refuse(request, 400, "请选择角色", back=BACK)
    except staff.UnknownStaff:
        return refuse(request, 404, "没有这个用户", back=BACK)
    return see_other(f"{BACK}?notice=role")


@allow("users")
async def set_active(request: Request, staff_id: int) -> HTTPResponse:
    refused = _not_self(request, staff_id)
    if refused:
        return refused
    active = request.form.get("active") == "1"
    try:
        await run(staff.set_active, console(request).sessions, staff_id, active, user_of(request).username, now())
    except staff.UnknownStaff:
        return refuse(request, 404, "没有这个用户", back=BACK)
    return see_other(f"{BACK}?notice={'activated' if active else 'deactivated'}")


@allow("users")
async def reset_password(request: Request, staff_id: int) -> HTTPResponse:
    password = _password(request)
    if not isinstance(password, str):
        return password
    try:
        await run(staff.reset_password, console(request).sessions, staff_id, password, user_of(request).username, now())
    except staff.UnknownStaff:
        return refuse(request, 404, "没有这个用户", back=BACK)
    return see_other(f"{BACK}?notice=password")


def add_routes(app: Sanic) -> None:
    app.add_route(users_page, "/admin/users", methods=["GET"], name="users_page")
    app.add_route(create, "/admin/users", methods=["POST"], name="create_user")
    app.add_route(change_role, "/admin/users/<staff_id:int>/role", methods=["POST"], name="change_role")
    app.add_route(set_active, "/admin/users/<staff_id:int>/active", methods=["POST"], name="set_active")
    app.add_route(reset_password, "/admin/users/<staff_id:int>/password", methods=["POST"], name="reset_password")
