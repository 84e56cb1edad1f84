"""The chat template: ChatML or the adapter's own, rendered in a sandbox."""

import json

import pytest

from proxy.core.chat import Turn
from proxy.core.errors import ChatTemplateError
from proxy.service.chat_template import CHATML_TEMPLATE, ChatTemplate, conversation_turns, load_chat_template

TURNS = conversation_turns("Be kind.", [], "hello")


def test_no_adapter_folder_means_chatml():
    assert load_chat_template(None).source == CHATML_TEMPLATE


def test_template_from_tokenizer_config(tmp_path):
    custom = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": custom, "eos_token": "</s>"}))
    assert load_chat_template(tmp_path).render(TURNS) == "[system] Be kind.\n[user] hello\n[assistant]"


def test_chat_template_jinja_file_wins(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "from config"}))
    (tmp_path / "chat_template.jinja").write_text("from file: {{ messages[-1]['content'] }}")
    assert load_chat_template(tmp_path).render([Turn("user", "hi")]) == "from file: hi"


def test_folder_without_a_template_means_chatml(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    assert load_chat_template(tmp_path).source == CHATML_TEMPLATE


def test_dev_adapter_template_renders_the_therapist_chatml(dev_adapter):
    rendered = load_chat_template(dev_adapter).render(TURNS)
    expected = "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert rendered == expected


def test_chatml_renders_system_history_and_generation_prompt():
    turns = conversation_turns("Be kind.", [Turn("user", "a"), Turn("assistant", "b")], "c")
    assert ChatTemplate().render(turns) == (
        "<|im_start|>system\nBe kind.<|im_end|>\n"
        "<|im_start|>user\na<|im_end|>\n"
        "<|im_start|>assistant\nb<|im_end|>\n"
        "<|im_start|>user\nc<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("source", ["{{ messages.__class__.__mro__ }}", "{{ messages.append(1) }}"])
def test_template_is_sandboxed(source):
    # An adapter's template is data from a volume: it may not reach Python internals or mutate state.
    with pytest.raises(ChatTemplateError, match="unsafe"):
        ChatTemplate(source).render([Turn("user", "x")])


def test_template_raise_exception_becomes_a_template_error():
    strict = ChatTemplate("{% if messages[0]['role'] != 'system' %}{{ raise_exception('system first') }}{% endif %}")
    with pytest.raises(ChatTemplateError, match="system first"):
        strict.render([Turn("user", "x")])
