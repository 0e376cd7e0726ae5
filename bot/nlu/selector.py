"""Rasa's ResponseSelector, asked only about the messages that need an FAQ answer."""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import RESPONSE_SELECTOR_PROPERTY_NAME, RESPONSE_SELECTOR_RETRIEVAL_INTENTS
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class RetrievalResponseSelector(ResponseSelector):
    """Picks the answer (faq/how_to_pay ...) only when the intent classifier before it
    in the pipeline said the message is that retrieval intent (`faq`).

    Rasa's own selector scores every message, though its choice is read only when the
    intent is `faq` (the rule says utter_faq): about 5 ms of TensorFlow a message, a
    tenth of the Rasa server's time per turn (bench/RESULTS.md, issue 8). Trained,
    configured and answering exactly as Rasa's ResponseSelector; other messages carry
    only the list of retrieval intents, without a selection.
    """

    def process(self, messages: list[Message]) -> list[Message]:
        asked = [message for message in messages if self._is_asked(message)]
        if asked:
            super().process(asked)
        chosen = {id(message) for message in asked}
        for message in messages:
            if id(message) not in chosen:
                selection = message.get(RESPONSE_SELECTOR_PROPERTY_NAME) or {}
                selection[RESPONSE_SELECTOR_RETRIEVAL_INTENTS] = self.all_retrieval_intents
                message.set(RESPONSE_SELECTOR_PROPERTY_NAME, selection, add_to_output=True)
        return messages

    def _is_asked(self, message: Message) -> bool:
        intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        if intent is None:  # no intent classifier ran before: select as Rasa does
            return True
        if self.retrieval_intent:
            return intent == self.retrieval_intent
        return intent in self.all_retrieval_intents
