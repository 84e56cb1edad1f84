"""The chat page at /, driven in a real headless Chromium (Debian's, launched by path) against a live
proxy on localtgi. Screenshots go to .cache/test-output/page/."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.fixtures import REPO_ROOT
from tests.support.servers import start_localtgi, start_proxy

CHROMIUM = "/usr/bin/chromium"
# Chromium's own calls home are switched off: the machine's network is closed, and none may leave.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps"]  # fmt: skip
SCREENSHOTS = REPO_ROOT / ".cache" / "test-output" / "page"
MODEL = "qwen_therapist_lora"
KEY = "tk-page-0123456789"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack():
    with start_localtgi("--lora-adapters", MODEL, "--token-rate", "40") as tgi_url:
        with start_proxy(tgi_url) as proxy_url:
            yield tgi_url, proxy_url


class Watched:
    """A page, and every request it made."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests = []
        page.on("request", lambda request: self.requests.append(request))

    def chat_bodies(self) -> list[dict]:
        return [json.loads(r.post_data) for r in self.requests if r.url.endswith("/stream_chat") and r.post_data]


def open_page(browser, url: str, **context) -> Watched:
    page = browser.new_context(**context).new_page()
    watched = Watched(page)
    page.goto(f"{url}/")
    return watched


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def last_reply(page: Page):
    return page.locator(".turn.assistant").last


def wait_until_done(page: Page) -> None:
    expect(page.locator(".turn.streaming")).to_have_count(0, timeout=20_000)


def stats(tgi_url: str) -> dict:
    return httpx.get(f"{tgi_url}/_localtgi/stats").json()


def test_the_page_is_served_under_a_strict_content_security_policy(stack):
    _, proxy_url = stack
    page = httpx.get(f"{proxy_url}/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert '<script src="page/chat.js"' in page.text and "http" not in page.text.split("<body>")[1]
    for asset in ("/page/chat.js", "/page/chat.css"):
        assert httpx.get(f"{proxy_url}{asset}").status_code == 200


def test_two_turns_stream_in_with_history_and_say_it_is_an_ai(browser, stack):
    _, proxy_url = stack
    watched = open_page(browser, proxy_url, viewport={"width": 1200, "height": 800})
    page = watched.page
    expect(page.get_by_text("You are talking with an AI, not a person")).to_be_visible()

    send(page, "I have been feeling anxious about work.")
    reply = last_reply(page)
    expect(reply).to_have_class("turn assistant streaming")
    lengths = []
    for _ in range(20):  # while it streams, the reply grows
        lengths.append(len(reply.locator(".text").inner_text()))
        if lengths[-1] > 20:
            break
        time.sleep(0.05)
    assert 0 < lengths[-1] and reply.get_attribute("class") == "turn assistant streaming"
    wait_until_done(page)
    first_reply = reply.locator(".text").inner_text()
    assert len(first_reply) > lengths[-1] // 2 and first_reply.strip()

    send(page, "Mostly at night.")
    wait_until_done(page)
    assert page.locator(".turn.user").count() == 2 and page.locator(".turn.assistant").count() == 2
    bodies = watched.chat_bodies()
    assert bodies[1]["conversation_history"] == [
        {"role": "user", "content": "I have been feeling anxious about work."},
        {"role": "assistant", "content": first_reply},
    ]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "desktop.png", full_page=True)

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator(".turn")).to_have_count(0)
    send(page, "Hello again.")
    wait_until_done(page)
    assert watched.chat_bodies()[-1]["conversation_history"] == []
    assert {urlsplit(request.url).hostname for request in watched.requests} == {"127.0.0.1"}


def test_stop_cancels_the_generation_upstream(browser, stack):
    tgi_url, proxy_url = stack
    page = open_page(browser, proxy_url).page
    before = stats(tgi_url)["cancelled"]
    send(page, "Tell me everything.")
    expect(last_reply(page).locator(".text")).not_to_have_text("", timeout=5_000)
    page.get_by_role("button", name="Stop").click()
    expect(last_reply(page)).to_contain_text("Stopped.")
    deadline = time.monotonic() + 5
    while stats(tgi_url)["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(tgi_url)["cancelled"] == before + 1 and stats(tgi_url)["active"] == 0
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_crisis_resources_show_as_a_card_of_their_own_before_the_reply(browser, stack):
    _, proxy_url = stack
    watched = open_page(browser, proxy_url, viewport={"width": 1200, "height": 800})
    page = watched.page
    send(page, "I can't take it anymore. I'm going to kill myself tonight.")
    wait_until_done(page)
    card = page.locator(".notice.resources")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Help is available")
    expect(card).to_contain_text("988")
    assert card.get_attribute("role") == "alert"
    reply = last_reply(page).locator(".text").inner_text()
    assert reply.strip() and "988" not in reply  # the model's reply is its own bubble, after the card
    order = page.evaluate("[...document.querySelectorAll('#log > li')].map((item) => item.className)")
    assert order == ["turn user", "notice resources", "turn assistant"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "crisis-resources.png", full_page=True)
    send(page, "thank you")
    wait_until_done(page)
    history = watched.chat_bodies()[-1]["conversation_history"]
    assert history[1] == {"role": "assistant", "content": reply}  # the card is not the model's turn


def test_at_phone_width_nothing_scrolls_sideways(browser, stack):
    _, proxy_url = stack
    page = open_page(browser, proxy_url, viewport={"width": 390, "height": 844}, is_mobile=True).page
    send(page, "A long word: " + "overwhelmed" * 12)
    wait_until_done(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for name in ("Send", "Stop", "New conversation"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.screenshot(path=SCREENSHOTS / "phone.png", full_page=True)


def test_with_keys_on_the_page_asks_for_one_and_then_works(browser):
    with start_localtgi("--lora-adapters", MODEL, "--token-rate", "200") as tgi_url:
        with start_proxy(tgi_url, api_keys=KEY) as proxy_url:
            page = open_page(browser, proxy_url).page
            key_field = page.get_by_label("API key")
            expect(key_field).to_be_visible()
            expect(page.get_by_role("alert")).to_contain_text("needs an API key")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOTS / "key-needed.png")

            key_field.fill("not-the-key")
            page.get_by_role("button", name="Use key").click()
            send(page, "Hello")
            expect(page.get_by_role("alert")).to_contain_text("API key")
            expect(key_field).to_be_visible()
            assert page.get_by_label("Message").input_value() == "Hello"  # nothing lost

            key_field.fill(KEY)
            page.get_by_role("button", name="Use key").click()
            assert page.evaluate("sessionStorage.getItem('therapist-api-key')") == KEY
            assert page.evaluate("localStorage.length") == 0
            page.get_by_label("Message").press("Enter")
            wait_until_done(page)
            assert last_reply(page).locator(".text").inner_text().strip()
            page.screenshot(path=SCREENSHOTS / "with-key.png", full_page=True)


def test_a_busy_or_starting_server_says_to_try_again(browser):
    with start_localtgi("--lora-adapters", MODEL, "--overload") as tgi_url:
        with start_proxy(tgi_url) as proxy_url:
            page = open_page(browser, proxy_url).page
            send(page, "Hello")
            expect(page.get_by_role("alert")).to_contain_text("busy right now. Please try again in 1 second")
            assert page.locator(".turn").count() == 0
