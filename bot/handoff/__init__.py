"""Live handoff (转人工): conversations handed to agents and back.

- service.py       the queue, claims, messages both ways, hand-back, resolution, return visits
- desk.py          what an agent does in the console that also reaches the customer (via Rasa)
- policy.py        the Rasa policy that keeps the bot silent while an agent has the conversation
- names.py         intents, actions and slots the three share
- satisfaction.py  reading the customer's 1-5 score
- models.py        the tables; errors.py the named failures
"""
