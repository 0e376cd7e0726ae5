"""HandoffPolicy on real Rasa trackers and the project's own domain and config: while an
agent has the conversation the customer's messages go to the agent, an agent's word
(an EXTERNAL_ intent) runs its action, a rating is recorded, and otherwise the policy
stays out of the way."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rasa.core.constants import RULE_POLICY_PRIORITY
from rasa.core.policies.ensemble import DefaultPolicyPredictionEnsemble
from rasa.core.policies.policy import PolicyPrediction
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.handoff.names import EXTERNAL_ACTIONS, HANDOFF_ACTIONS, HANDOFF_SLOT, RATING, RATING_SLOT, RELAY
from bot.handoff.policy import HandoffPolicy, next_action

PROJECT = Path(__file__).resolve().parents[1]
POLICY = "bot.handoff.policy.HandoffPolicy"
TICKET = "GD202611240001"


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT / "domain.yml"))


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((PROJECT / "config.yml").read_text(encoding="utf-8"))


@pytest.fixture
def policy(tmp_path) -> HandoffPolicy:
    return HandoffPolicy.create(
        HandoffPolicy.get_default_config(),
        LocalModelStorage(tmp_path),
        Resource("handoff"),
        ExecutionContext(GraphSchema({}), "x"),
    )


def said(text: str, intent: str) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 0.98})


def tracker(domain: Domain, *turns: Event) -> DialogueStateTracker:
    """A conversation as Rasa keeps it: a session start, then `turns`."""
    start = [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted(), ActionExecuted(ACTION_LISTEN_NAME)]
    return DialogueStateTracker.from_events("customer-1", [*start, *turns], domain.slots)


def decided(policy: HandoffPolicy, domain: Domain, conversation: DialogueStateTracker) -> str:
    """The one action the policy predicts, checking that it is certain and overrules the rules."""
    prediction = policy.predict_action_probabilities(conversation, domain)
    assert prediction.is_no_user_prediction
    assert max(prediction.probabilities) == 1.0 and sum(prediction.probabilities) == 1.0
    assert (prediction.policy_name, prediction.policy_priority) == ("HandoffPolicy", 7)
    return domain.action_names_or_texts[prediction.probabilities.index(1.0)]


def handed_over(domain: Domain, *turns: Event) -> DialogueStateTracker:
    return tracker(domain, SlotSet(HANDOFF_SLOT, TICKET), *turns)


# --- what it decides ----------------------------------------------------------------------


def test_a_customer_message_while_handed_over_goes_to_the_agent(policy, domain):
    # the slots action_read_turn sets come after the message: the message is still the last turn
    conversation = handed_over(domain, said("我家停电两天了", "query_outage"), SlotSet("frustration", 1.0))
    assert next_action(conversation) == RELAY
    assert decided(policy, domain, conversation) == RELAY


@pytest.mark.parametrize("intent", ["greet", "request_human", "nlu_fallback", "query_bill"])
def test_every_kind_of_message_goes_to_the_agent(policy, domain, intent):
    assert decided(policy, domain, handed_over(domain, said("随便说点什么", intent))) == RELAY


def test_after_relaying_the_bot_listens(policy, domain):
    conversation = handed_over(domain, said("有人吗", "greet"), ActionExecuted(RELAY))
    assert next_action(conversation) == ACTION_LISTEN_NAME
    assert decided(policy, domain, conversation) == ACTION_LISTEN_NAME


@pytest.mark.parametrize("action", sorted(HANDOFF_ACTIONS))
def test_after_any_handoff_action_the_bot_listens(policy, domain, action):
    conversation = tracker(domain, said("5", "inform"), ActionExecuted(action), SlotSet(RATING_SLOT, None))
    assert decided(policy, domain, conversation) == ACTION_LISTEN_NAME


@pytest.mark.parametrize("intent, action", sorted(EXTERNAL_ACTIONS.items()))
def test_an_agents_word_runs_its_action_even_without_a_slot(policy, domain, intent, action):
    external = UserUttered.create_external(intent, [], "callback")
    assert next_action(tracker(domain, external)) == action
    assert decided(policy, domain, tracker(domain, external)) == action
    assert decided(policy, domain, handed_over(domain, external)) == action  # not relayed to the agent


def test_a_customer_typing_an_agents_intent_is_relayed_not_obeyed(policy, domain):
    """"/EXTERNAL_hand_back" typed by a customer parses as that intent; only the HTTP API's
    external message (text "EXTERNAL: ...") runs the agent's action."""
    typed = said("/EXTERNAL_hand_back", "EXTERNAL_hand_back")
    assert decided(policy, domain, handed_over(domain, typed)) == RELAY
    assert next_action(tracker(domain, typed)) is None


def test_the_answer_to_the_rating_question_is_recorded(policy, domain):
    conversation = tracker(domain, SlotSet(RATING_SLOT, TICKET), said("5", "inform"))
    assert next_action(conversation) == RATING
    assert decided(policy, domain, conversation) == RATING


@pytest.mark.parametrize(
    "turns",
    [
        [said("我要查电费", "query_bill")],
        [said("你好", "greet"), ActionExecuted("utter_greet")],
        [SlotSet(HANDOFF_SLOT, None), said("你好", "greet")],  # handed back: the bot answers again
        [],
    ],
    ids=["ordinary-message", "after-an-ordinary-action", "slot-cleared", "nothing-said"],
)
def test_otherwise_it_abstains(policy, domain, turns):
    conversation = tracker(domain, *turns)
    assert next_action(conversation) is None
    prediction = policy.predict_action_probabilities(conversation, domain)
    assert not prediction.is_no_user_prediction
    assert len(prediction.probabilities) == len(domain.action_names_or_texts)
    assert set(prediction.probabilities) == {0.0}


def test_its_decision_overrules_a_certain_rule(policy, domain):
    """Rasa's ensemble picks the handoff's relay over a rule just as sure, even a no-user one."""
    conversation = handed_over(domain, said("你好", "greet"))
    rule = [0.0] * len(domain.action_names_or_texts)
    rule[domain.index_for_action("utter_greet")] = 1.0
    for rule_no_user in (False, True):
        rival = PolicyPrediction(list(rule), "RulePolicy", RULE_POLICY_PRIORITY, is_no_user_prediction=rule_no_user)
        ours = policy.predict_action_probabilities(conversation, domain)
        best = DefaultPolicyPredictionEnsemble().combine_predictions([rival, ours], conversation, domain)
        assert best.policy_name == "HandoffPolicy"
        assert domain.action_names_or_texts[best.probabilities.index(1.0)] == RELAY


def test_abstaining_leaves_the_turn_to_the_rules(policy, domain):
    conversation = tracker(domain, said("你好", "greet"))
    rule = [0.0] * len(domain.action_names_or_texts)
    rule[domain.index_for_action("utter_greet")] = 0.9
    rival = PolicyPrediction(rule, "RulePolicy", RULE_POLICY_PRIORITY)
    ours = policy.predict_action_probabilities(conversation, domain)
    assert DefaultPolicyPredictionEnsemble().combine_predictions([ours, rival], conversation, domain).policy_name == (
        "RulePolicy"
    )


def test_trained_and_loaded_it_decides_the_same(policy, domain, tmp_path):
    resource = policy.train([], domain)
    loaded = HandoffPolicy.load(
        HandoffPolicy.get_default_config(),
        LocalModelStorage(tmp_path),
        resource,
        ExecutionContext(GraphSchema({}), "x"),
    )
    assert decided(loaded, domain, handed_over(domain, said("有人吗", "greet"))) == RELAY


# --- the project's config and domain ----------------------------------------------------------


def test_config_puts_the_policy_before_the_rules_and_above_them(config):
    names = [entry["name"] for entry in config["policies"]]
    assert POLICY in names and "RulePolicy" in names
    assert names.index(POLICY) < names.index("RulePolicy")
    ours = next(entry for entry in config["policies"] if entry["name"] == POLICY)
    priority = ours.get("priority", HandoffPolicy.get_default_config()["priority"])
    assert priority > RULE_POLICY_PRIORITY
    others = [entry.get("priority") for entry in config["policies"] if entry["name"] != POLICY]
    assert all(other is None or other < priority for other in others)


def test_rasa_builds_its_graph_with_the_policy(config):
    """The name in config.yml resolves to the registered component, as at training time."""
    graphs = DefaultV1Recipe().graph_config_for_recipe(config, {})
    classes = {node.uses for node in graphs.predict_schema.nodes.values()}
    assert HandoffPolicy in classes


def test_domain_has_every_handoff_action_intent_and_slot(domain):
    assert set(domain.user_actions) >= HANDOFF_ACTIONS
    assert set(domain.intents) >= set(EXTERNAL_ACTIONS)
    assert {intent for intent in domain.intents if intent.startswith("EXTERNAL_")} == set(EXTERNAL_ACTIONS)
    slots = {slot.name: slot for slot in domain.slots}
    assert {HANDOFF_SLOT, RATING_SLOT} <= set(slots)
    # the policy reads the slots itself; they must not change what the other policies learned
    assert not slots[HANDOFF_SLOT].influence_conversation and not slots[RATING_SLOT].influence_conversation
