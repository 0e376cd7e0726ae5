"""A pipeline component that puts every message into canonical form before tokenisation."""

from __future__ import annotations

import logging
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.text import MAX_NLU_CHARS, normalize

log = logging.getLogger(__name__)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class ChineseNormalizer(GraphComponent):
    """Traditional to Simplified, full-width to half-width, no stray spaces (see bot.text).

    Runs first in the pipeline. Very long messages are cut for the NLU only; the
    conversation keeps what the customer wrote.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"max_chars": MAX_NLU_CHARS}

    def __init__(self, config: dict[str, Any]) -> None:
        self._max_chars = config["max_chars"]

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseNormalizer:
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            text = example.get(TEXT)
            if not text:
                continue
            normalized = normalize(text)
            # annotated offsets would no longer fit a text of another length
            if example.get(ENTITIES) and len(normalized) != len(text):
                continue
            example.set(TEXT, normalized)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if isinstance(text, str):
                normalized = normalize(text)
                if len(normalized) > self._max_chars:
                    log.info("message of %d characters cut to %d for NLU", len(normalized), self._max_chars)
                    normalized = normalized[: self._max_chars]
                message.set(TEXT, normalized)
        return messages
