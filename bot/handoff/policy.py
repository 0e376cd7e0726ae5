"""While a person has the conversation, the bot's policies stay out of it.

HandoffPolicy runs in the Rasa server beside the rules. It decides a turn only when the
handoff is in charge, and then it always wins:
- an agent's word arriving through the HTTP API (an EXTERNAL_ intent) runs its action;
- a customer's message while the conversation is handed off goes to the agent
  (action_relay_to_agent), and nothing else answers it;
- the customer's answer to "how satisfied were you" is recorded (action_record_satisfaction);
- after any of these actions the bot listens.
Otherwise it abstains and the rules decide as always.
"""

from __future__ import annotations

from typing import Any

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME, EXTERNAL_MESSAGE_PREFIX
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.handoff.names import EXTERNAL_ACTIONS, HANDOFF_ACTIONS, HANDOFF_SLOT, RATING, RATING_SLOT, RELAY


def next_action(tracker: DialogueStateTracker) -> str | None:
    """The handoff's decision for this point of the conversation, or None to abstain."""
    last = next(
        (event for event in reversed(tracker.events) if isinstance(event, (UserUttered, ActionExecuted))),
        None,
    )
    if isinstance(last, ActionExecuted):
        return ACTION_LISTEN_NAME if last.action_name in HANDOFF_ACTIONS else None
    if not isinstance(last, UserUttered):
        return None
    intent = last.intent_name or ""
    # only the HTTP API says EXTERNAL_ intents; a customer typing "/EXTERNAL_hand_back" does not
    if intent in EXTERNAL_ACTIONS and (last.text or "").startswith(EXTERNAL_MESSAGE_PREFIX):
        return EXTERNAL_ACTIONS[intent]
    if tracker.get_slot(HANDOFF_SLOT):
        return RELAY
    if tracker.get_slot(RATING_SLOT):
        return RATING
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=False)
class HandoffPolicy(Policy):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # above the RulePolicy (6): when the handoff decides, nothing else does
        return {"priority": 7}

    def train(self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        return self._resource

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        action = next_action(tracker)
        if action is None:
            return self._prediction(probabilities)
        probabilities[domain.index_for_action(action)] = 1.0
        # a no-user prediction overrules every prediction made from the user's message
        return self._prediction(probabilities, is_no_user_prediction=True)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> HandoffPolicy:
        return cls(config, model_storage, resource, execution_context)
