"""The crisis detector's parts: its rules, how it reads long messages and context, the resources
message per region and language, and the operator's mistakes that stop the proxy from starting."""

from __future__ import annotations

import json

import pytest

from proxy.core.chat import ChatInput, Sampling, Turn
from proxy.policies.crisis.care import CrisisCare, CrisisCareSetupError
from proxy.policies.crisis.detector import CrisisDetector, context_of, windows
from proxy.policies.crisis.resources import CrisisResources, language_of
from proxy.policies.crisis.rules import rule_category

SAMPLING = Sampling(max_tokens=8, temperature=0.0, top_p=1.0)


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return CrisisDetector.load()


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I'm going to kill myself tonight", "suicide"),
        ("i just want to die", "suicide"),
        ("I've been so suicidal lately", "suicide"),
        ("estoy pensando en quitarme la vida", "suicide"),
        ("I cut myself again last night", "self_harm"),
        ("me sigo cortando los brazos", "self_harm"),
        ("I have these urges to hurt someone at work", "harm_to_others"),
        ("my husband hits me when he drinks", "abuse"),
        ("mi novio me golpea", "abuse"),
    ],
)
def test_the_rules_catch_unmistakable_first_person_statements(text, category):
    assert rule_category(text) == category


@pytest.mark.parametrize(
    "text",
    [
        "I don't want to kill myself, I just need sleep",  # a denial
        "I stopped cutting myself two years ago",  # the past
        "gonna kms if this match lags again lmao",  # a joke
        "qué oso, me quiero morir",  # an everyday Spanish hyperbole
        "nadie me pega, solo me ignoran",
        "My friend said she wants to kill herself",  # someone else
        "this exam is killing me",
    ],
)
def test_the_rules_leave_denials_jokes_and_other_people_to_the_model(text):
    assert rule_category(text) is None


def test_a_yes_to_a_question_about_a_plan_is_risk_and_to_anything_else_is_not():
    assert rule_category("yeah", context="Do you have a plan for how you would end your life?") == "suicide"
    assert rule_category("sí", context="¿Has pensado en hacerte daño?") == "self_harm"
    assert rule_category("yeah", context="Would you like to try a breathing exercise?") is None


def test_the_context_is_the_assistants_turn_just_before_the_message():
    asked = Turn("assistant", "Are you thinking about ending your life?")
    chat = ChatInput((Turn("user", "I feel awful"), asked), "yes", SAMPLING)
    assert context_of(chat) == asked.content
    assert context_of(ChatInput((asked, Turn("user", "hm")), "yes", SAMPLING)) == ""
    assert context_of(ChatInput((), "yes", SAMPLING)) == ""


def test_a_long_message_is_read_in_windows_from_its_start_and_its_end():
    text = "".join(f"sentence {i:04d}. " for i in range(800))
    parts = list(windows(text))
    assert len(parts) == 6 and parts[0] == text[:360] and text.endswith(parts[-1][-50:])
    assert list(windows("short")) == ["short"]


def test_risk_at_the_end_of_a_long_everyday_message_is_found(detector):
    day = (
        "This morning I got up early, made coffee and read the news for a while before work. "
        "The bus was late again, so I listened to a podcast about gardening while I waited. "
        "At the office we had a long meeting about the new schedule, and my manager asked me to update a sheet. "
        "For lunch I tried the new sandwich place near the station; the bread was great but the soup was too salty. "
        "In the afternoon I answered emails, fixed a printer problem and planned next week's training session. "
        "On the way home I stopped at the supermarket for rice, tomatoes, onions and a bag of oranges. "
        "My sister called to ask about the birthday dinner on Saturday, and we argued a bit about the restaurant. "
        "Then I cooked, watched two episodes of a baking show and folded the laundry from Sunday. "
        "Tomorrow I have a dentist appointment at nine, then I want to go to the library to return some books. "
        "I also need to call the landlord about the heating, because the radiator in the bedroom makes a noise. "
    )
    message = day + "I've got the pills counted out and tonight I'm going to take them all."
    parts = list(windows(message))
    assert len(parts) > 3 and message.endswith(parts[-1])
    verdict = detector.assess(message)
    assert verdict.flagged and verdict.category == "suicide"
    assert not detector.assess(parts[0]).flagged  # all that a reader of the first window alone would see


def test_the_model_reads_the_answer_in_its_context(detector):
    asked = "I hear you. Have you thought about how you would do it?"
    assert detector.assess("I have the rope in the garage", context=asked).flagged


def test_the_resources_message_follows_the_region_and_the_persons_language():
    us, gb = CrisisResources("US"), CrisisResources("gb")
    english = us.message("suicide", "I want to die")
    assert "988" in english and "911" in english and "AI" in english and english.endswith("\n\n")
    assert "marca 2" in us.message("suicide", "ya no quiero vivir, nadie me entiende")
    assert "116 123" in gb.message("suicide", "I want to die") and "999" in gb.message("abuse", "he hits me")
    assert "1-800-799-7233" in us.message("abuse", "he hits me")
    assert language_of("no sé qué hacer con mi vida") == "es" and language_of("I don't know what to do") == "en"


def test_an_operator_can_add_a_region_or_change_its_lines(tmp_path):
    resources_file = tmp_path / "resources.json"
    resources_file.write_text(json.dumps({
        "NZ": {"en": {"opening": "Kia ora.", "suicide": "Call or text 1737.", "closing": "Call 111 in an emergency."}},
        "US": {"en": {"opening": "Thank you for telling me."}},
    }))  # fmt: skip
    assert CrisisResources.load("NZ", resources_file).message("self_harm", "I hurt myself") == (
        "Kia ora. Call or text 1737. Call 111 in an emergency.\n\n"
    )
    changed = CrisisResources.load("US", resources_file).message("suicide", "I want to die")
    assert changed.startswith("Thank you for telling me. You can call or text 988")


@pytest.mark.parametrize(
    ("region", "resources_text", "says"),
    [
        ("ZZ", None, "PROXY_SAFETY_REGION"),
        ("US", "{not json", "PROXY_SAFETY_RESOURCES_FILE"),
    ],
)
def test_a_region_or_resources_file_that_cannot_work_stops_start_up_saying_what_to_change(
    tmp_path, region, resources_text, says
):
    resources_file = None
    if resources_text is not None:
        resources_file = tmp_path / "resources.json"
        resources_file.write_text(resources_text)
    with pytest.raises(CrisisCareSetupError) as raised:
        CrisisCare.from_settings("prepend", region, resources_file)
    assert says in str(raised.value) and "PROXY_SAFETY_POLICY=off" in str(raised.value)


def test_off_means_no_crisis_care_at_all():
    assert CrisisCare.from_settings("off", "ZZ", None) is None
