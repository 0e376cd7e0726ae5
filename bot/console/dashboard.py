"""The supervisor dashboard (数据看板): each figure of bot/reports.py as a chart (the page's
script draws it with the vendored Chart.js from /api/dashboard/<figure>) and as a CSV
file for Excel (/dashboard/<figure>.csv: UTF-8 with a BOM, Chinese headers)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sqlalchemy.orm import sessionmaker

from bot import reports
from bot.console import labels
from bot.console.web import allow, answer, console, now, refuse, render, run
from bot.reports import Period
from bot.tickets.categories import CATEGORIES

MAX_DAYS = 366


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    columns: tuple[str, ...]  # the CSV's headers
    table: Callable[[sessionmaker, Period, datetime], list[tuple]]  # the CSV's rows
    chart: Callable[[sessionmaker, Period, datetime], dict]  # Chart.js type, labels, datasets


def _percent(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%" if whole else ""


def _by_day(rows: list[reports.DayCount], period: Period, names: dict[str, str]) -> dict:
    """One dataset per key (in `names` order), one value per day of the period."""
    days = period.days()
    counts = {(row.day, row.key): row.tickets for row in rows}
    keys = [key for key in names if any(row.key == key for row in rows)]
    keys += sorted({row.key for row in rows} - set(keys))
    return {
        "type": "bar",
        "stacked": True,
        "labels": [day.isoformat() for day in days],
        "datasets": [{"label": names.get(k, k), "data": [counts.get((d, k), 0) for d in days]} for k in keys],
    }


def _categories_table(sessions, period, _now):
    return [(r.day, CATEGORIES.get(r.key, r.key), r.tickets) for r in reports.tickets_by_category(sessions, period)]


def _categories_chart(sessions, period, _now):
    return _by_day(reports.tickets_by_category(sessions, period), period, CATEGORIES)


def _priorities_table(sessions, period, _now):
    rows = reports.tickets_by_priority(sessions, period)
    return [(r.day, labels.priority_name(r.key), r.tickets) for r in rows]


def _priorities_chart(sessions, period, _now):
    return _by_day(reports.tickets_by_priority(sessions, period), period, labels.PRIORITY_NAMES)


def _sla_table(sessions, period, moment):
    rows = reports.sla_breaches(sessions, period, moment)
    return [(r.day, r.due, r.breached, _percent(r.breached, r.due)) for r in rows]


def _sla_chart(sessions, period, moment):
    rows = {r.day: r for r in reports.sla_breaches(sessions, period, moment)}
    days = period.days()
    return {
        "type": "bar",
        "labels": [d.isoformat() for d in days],
        "datasets": [
            {"label": "到期工单数", "data": [rows[d].due if d in rows else 0 for d in days]},
            {"label": "超时工单数", "data": [rows[d].breached if d in rows else 0 for d in days]},
        ],
    }


def _scores_table(sessions, period, _now):
    return [(r.score, r.tickets) for r in reports.satisfaction_scores(sessions, period)]


def _scores_chart(sessions, period, _now):
    rows = reports.satisfaction_scores(sessions, period)
    return {
        "type": "bar",
        "labels": [f"{r.score}分" for r in rows],
        "datasets": [{"label": "工单数", "data": [r.tickets for r in rows]}],
    }


def _daily_satisfaction_table(sessions, period, _now):
    return [(r.day, f"{r.average:.2f}", r.rated) for r in reports.satisfaction_by_day(sessions, period)]


def _daily_satisfaction_chart(sessions, period, _now):
    rows = {r.day: r for r in reports.satisfaction_by_day(sessions, period)}
    days = period.days()
    return {
        "type": "line",
        "labels": [d.isoformat() for d in days],
        "datasets": [{"label": "平均满意度", "data": [rows[d].average if d in rows else None for d in days]}],
        "max": 5,
        "decimals": True,
    }


def _containment_table(sessions, period, _now):
    rows = reports.containment(sessions, period)
    return [(r.day, r.conversations, r.handed_over, _percent(r.conversations - r.handed_over, r.conversations))
            for r in rows]


def _containment_chart(sessions, period, _now):
    rows = {r.day: r for r in reports.containment(sessions, period)}
    days = period.days()
    shares = [round(rows[d].contained * 100, 1) if d in rows else None for d in days]
    return {
        "type": "line",
        "labels": [d.isoformat() for d in days],
        "datasets": [{"label": "机器人独立解决率（%）", "data": shares}],
        "decimals": True,
        "max": 100,
    }


NO_FALLBACK_FIGURE = (
    "兜底率来自 Rasa 的事件流：运行分析消费者（python -m bot analytics consume）并设置 ANALYTICS_SOURCE=events 后可见"
)


def _fallbacks_table(sessions, period, _now):
    rows = reports.fallbacks(sessions, period) or []
    return [(r.day, r.answered, r.fallbacks, _percent(r.fallbacks, r.answered)) for r in rows]


def _fallbacks_chart(sessions, period, _now):
    rows = reports.fallbacks(sessions, period)
    by_day = {r.day: r for r in rows or []}
    days = period.days()
    chart = {
        "type": "line",
        "labels": [d.isoformat() for d in days],
        "datasets": [
            {"label": "兜底率（%）", "data": [round(by_day[d].share * 100, 1) if d in by_day else None for d in days]}
        ],
        "decimals": True,
    }
    if rows is None:
        chart["note"] = NO_FALLBACK_FIGURE  # the page says why instead of "no data"
    return chart


def _hot_spots_table(sessions, period, _now):
    return [(r.area, r.outages, r.complaints) for r in reports.hot_spots(sessions, period)]


def _hot_spots_chart(sessions, period, _now):
    rows = reports.hot_spots(sessions, period)
    return {
        "type": "bar",
        "horizontal": True,
        "labels": [r.area for r in rows],
        "datasets": [
            {"label": "停电次数", "data": [r.outages for r in rows]},
            {"label": "投诉数", "data": [r.complaints for r in rows]},
        ],
    }


def _units_table(sessions, period, _now):
    return [(r.unit, r.complaints, r.substantiated) for r in reports.complaints_by_unit(sessions, period)]


def _units_chart(sessions, period, _now):
    rows = reports.complaints_by_unit(sessions, period)
    return {
        "type": "bar",
        "horizontal": True,
        "labels": [r.unit for r in rows],
        "datasets": [
            {"label": "投诉数", "data": [r.complaints for r in rows]},
            {"label": "属实数", "data": [r.substantiated for r in rows]},
        ],
    }


_FIGURES = (
    ("categories", "各类别工单数（按日）", ("日期", "类别", "工单数"), _categories_table, _categories_chart),
    ("priorities", "各优先级工单数（按日）", ("日期", "优先级", "工单数"), _priorities_table, _priorities_chart),
    ("sla", "超时工单（按到期日）", ("日期", "到期工单数", "超时工单数", "超时率"), _sla_table, _sla_chart),
    ("satisfaction", "满意度评分分布", ("满意度评分", "工单数"), _scores_table, _scores_chart),
    (
        "satisfaction_daily",
        "平均满意度（按办结日）",
        ("日期", "平均满意度", "评价工单数"),
        _daily_satisfaction_table,
        _daily_satisfaction_chart,
    ),
    (
        "containment",
        "机器人独立解决率（按日）",
        ("日期", "会话数", "转人工会话数", "机器人独立解决率"),
        _containment_table,
        _containment_chart,
    ),
    (
        "fallbacks",
        "兜底率（没听懂，按日）",
        ("日期", "机器人应答的客户消息数", "兜底次数", "兜底率"),
        _fallbacks_table,
        _fallbacks_chart,
    ),
    ("hotspots", "热点区域（停电或投诉两次以上）", ("区域", "停电次数", "投诉数"), _hot_spots_table, _hot_spots_chart),
    ("units", "被投诉人员/单位", ("被投诉人员/单位", "投诉数", "属实数"), _units_table, _units_chart),
)
FIGURES: dict[str, Figure] = {spec[0]: Figure(*spec) for spec in _FIGURES}


def period_of(request: Request, today: date) -> Period:
    """?start=YYYY-MM-DD&end=YYYY-MM-DD, by default the last 30 days; at most a year."""
    default = Period.last_days(today)
    try:
        start = date.fromisoformat(request.args.get("start", "")) if request.args.get("start") else default.start
        end = date.fromisoformat(request.args.get("end", "")) if request.args.get("end") else default.end
    except ValueError:
        return default
    start, end = min(start, end), max(start, end)
    return Period(max(start, end - timedelta(days=MAX_DAYS - 1)), end)


def csv_body(columns: tuple[str, ...], rows: list[tuple]) -> bytes:
    """UTF-8 with a BOM (so Excel reads the Chinese), CRLF lines; text that Excel would take
    for a formula (=, +, -, @) is quoted with an apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _cell(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@allow("dashboard")
async def dashboard_page(request: Request) -> HTTPResponse:
    period = period_of(request, now().date())
    return render(request, "dashboard.html", figures=list(FIGURES.values()), period=period)


@allow("dashboard")
async def figure_json(request: Request, key: str) -> HTTPResponse:
    figure = FIGURES.get(key)
    if figure is None:
        return refuse(request, 404, "没有这个图表")
    moment = now()
    period = period_of(request, moment.date())
    chart = await run(figure.chart, console(request).sessions, period, moment)
    return answer({"key": key, "title": figure.title, "start": period.start, "end": period.end, **chart})


def _csv_handler(figure: Figure) -> Callable:
    @allow("export")
    async def export(request: Request) -> HTTPResponse:
        moment = now()
        period = period_of(request, moment.date())
        rows = await run(figure.table, console(request).sessions, period, moment)
        filename = f"{figure.key}-{period.start.isoformat()}-{period.end.isoformat()}.csv"
        return HTTPResponse(
            csv_body(figure.columns, rows),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return export


def add_routes(app: Sanic) -> None:
    app.add_route(dashboard_page, "/dashboard", methods=["GET"], name="dashboard_page")
    app.add_route(figure_json, "/api/dashboard/<key>", methods=["GET"], name="figure_json")
    for figure in FIGURES.values():
        app.add_route(_csv_handler(figure), f"/dashboard/{figure.key}.csv", methods=["GET"], name=f"csv_{figure.key}")
