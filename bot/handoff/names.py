"""The names the handoff shares between the Rasa server (policy.py), the actions and the
console: no Rasa import here, so the action server and the console stay light."""

from __future__ import annotations

# what an agent (or the handoff's reminder) asks the bot to do, through trigger_intent
EXTERNAL_ACTIONS = {
    "EXTERNAL_agent_reply": "action_agent_reply",
    "EXTERNAL_hand_back": "action_hand_back",
    "EXTERNAL_handoff_resolved": "action_handoff_resolved",
    "EXTERNAL_handoff_reminder": "action_handoff_reminder",
}
RELAY = "action_relay_to_agent"
RATING = "action_record_satisfaction"
HANDOFF_ACTIONS = frozenset({*EXTERNAL_ACTIONS.values(), RELAY, RATING})
# the slots that put the handoff in charge (domain.yml)
HANDOFF_SLOT = "handoff_ticket"
RATING_SLOT = "rating_ticket"
