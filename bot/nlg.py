"""Rasa's response generator, minus cold repetition: of a response's variants, one the
customer has not yet read in this conversation is chosen (the same canned line again
and again is one of the complaint doctrine's wrong ways). Configured in endpoints.yml
as `nlg: type: bot.nlg.FreshResponses`; it runs inside the Rasa server."""

from __future__ import annotations

import copy
import random
from typing import Any

from rasa.core.nlg.generator import ResponseVariationFilter
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig


class FreshResponses(TemplatedNaturalLanguageGenerator):
    def __init__(self, endpoint_config: EndpointConfig | None = None, domain: Domain | None = None) -> None:
        super().__init__((domain or Domain.empty()).responses)

    async def generate(
        self, utter_action: str, tracker: DialogueStateTracker, output_channel: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        slots = tracker.current_slot_values()
        variants = ResponseVariationFilter(self.responses).responses_for_utter_action(
            utter_action, output_channel, slots
        )
        if not variants:
            return None
        said = {event.text for event in tracker.events if isinstance(event, BotUttered)}
        filled = [self._fill_response(copy.deepcopy(v), slots, **kwargs) for v in variants]
        fresh = [response for response in filled if response.get("text") not in said]
        return random.choice(fresh or filled)
