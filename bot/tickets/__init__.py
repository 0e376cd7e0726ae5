"""The ticket service (工单): complaints, fault reports and requests the bot files for a
person to handle, with their number, priority, deadline and history.

- categories.py  the twelve complaint categories, request types, statuses; category guessing
- priority.py    priority rules and deadlines (SLA)
- service.py     file, find and list tickets (and the workflow, re-exported)
- workflow.py    statuses, assignment, notes, callback phone, return visit, history
- outbox.py      forwarding to the company's work-order system
- numbers.py     GD + YYYYMMDD + daily sequence
- drafts.py      what makes a draft fileable
- store.py       one transaction per operation; database failures as TicketStoreUnavailable
- models.py      the tables; records.py the plain values callers get; errors.py the named failures

docs/tickets.md describes the whole.
"""
