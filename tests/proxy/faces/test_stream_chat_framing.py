"""The /stream_chat wire format: events as bytes."""

import json

from proxy.core.chat import Notice, SafetyVerdict, StreamEnd
from proxy.core.errors import UpstreamGenerationFailed
from proxy.faces.stream_chat.framing import frame_chat_event


def test_token_frame_is_one_ascii_data_line():
    chunk = frame_chat_event("caf\u00e9 \U0001f642")
    assert chunk == b'data: {"token": "caf\\u00e9 \\ud83d\\ude42", "done": false}\n\n'
    assert json.loads(chunk[6:]) == {"token": "caf\u00e9 \U0001f642", "done": False}


def test_a_notice_reaches_the_guides_clients_as_token_text_marked_for_the_page():
    # The guide's clients print every token event's text; a notice the service produced is text to them,
    # and `notice` lets the page show it apart.
    event = json.loads(frame_chat_event(Notice("crisis_resources", "Call 988."))[6:])
    assert event == {"token": "Call 988.", "done": False, "notice": "crisis_resources"}


def test_the_final_event_carries_the_safety_verdict_when_the_detector_ran():
    flagged = json.loads(frame_chat_event(StreamEnd("stop", 12, 5, safety=SafetyVerdict(True, "abuse")))[6:])
    assert flagged["safety"] == {"flagged": True, "category": "abuse"}
    assert "safety" not in json.loads(frame_chat_event(StreamEnd("stop", 12, 5))[6:])


def test_final_frame_carries_finish_reason_usage_and_error():
    ok = json.loads(frame_chat_event(StreamEnd("length", 12, 5))[6:])
    assert ok == {
        "token": "",
        "done": True,
        "finish_reason": "length",
        "usage": {"prompt_tokens": 12, "completion_tokens": 5},
    }
    failed = json.loads(frame_chat_event(StreamEnd("error", None, 3, UpstreamGenerationFailed("boom")))[6:])
    assert failed["finish_reason"] == "error" and failed["error"] == {"type": "generation", "message": "boom"}
