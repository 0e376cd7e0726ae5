"""The agents' console (坐席工作台): a web app where agents take over conversations the bot
handed on, work tickets and make return visits (回访), supervisors watch the figures, and
admins manage staff accounts. `python -m bot console serve` runs it (README.md here).

- app.py              create_app(): routes, the checks on every request, security headers
- web.py              roles and permissions, rendering, JSON, refusals
- security.py         Content-Security-Policy and friends, CSRF tokens, the login form's token
- staff.py, signin.py staff accounts and the audit log; signing in, lockout, sessions
- login.py            the login and logout pages
- queue.py            the queue (live over Server-Sent Events, streams.py) and the claim
- conversation.py     the conversation view; ticket_actions.py what an agent does there
- visits.py           return visits; dashboard.py the figures (bot/reports.py); admin.py users
- labels.py           the Chinese words for priorities, states, events
- models.py           the tables (migration 0005); templates/ and static/ the pages

This package's __init__ imports nothing: the migrations import models.py alone.
"""
