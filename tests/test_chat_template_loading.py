"""The proxy renders with the adapter's own chat template when the adapter folder has one."""

import json

from proxy.chat_template import CHATML_TEMPLATE, Turn, conversation_turns, load_chat_template

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
