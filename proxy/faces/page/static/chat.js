// The chat page: the guide's POST /stream_chat, read as it streams. No dependencies, no build step.
"use strict";

const KEY_STORAGE = "therapist-api-key"; // sessionStorage: this tab only
const $ = (id) => document.getElementById(id);
const log = $("log");
const message = $("message");
const sendButton = $("send");
const stopButton = $("stop");
const status = $("status");
const keySection = $("key-section");
const keyInput = $("api-key");

let history = []; // [{role, content}], sent with every turn
let controller = null; // the stream in flight, if any
let conversation = 0; // counts "New conversation"s: a reply that ends after one belongs to none

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function headers() {
  const result = { "Content-Type": "application/json" };
  if (apiKey()) result.Authorization = "Bearer " + apiKey();
  return result;
}

function showStatus(text) {
  status.textContent = text;
  status.hidden = !text;
}

function askForKey(text) {
  keySection.hidden = false;
  showStatus(text);
  keyInput.focus();
}

function addTurn(role, text) {
  const item = document.createElement("li");
  item.className = "turn " + role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "AI";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  log.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

// Text the service sends itself (crisis resources, the AI disclosure): a card of its own, before the reply,
// never part of the model's turn in the history sent back.
function addNotice(kind, reply) {
  const item = document.createElement("li");
  item.className = "notice " + (kind === "crisis_resources" ? "resources" : "disclosure-card");
  item.setAttribute("role", kind === "crisis_resources" ? "alert" : "note");
  const title = document.createElement("span");
  title.className = "who";
  title.textContent = kind === "crisis_resources" ? "Help is available" : "About this chat";
  const body = document.createElement("span");
  body.className = "text";
  item.append(title, body);
  log.insertBefore(item, reply);
  return body;
}

function note(item, text) {
  const span = document.createElement("span");
  span.className = "note";
  span.textContent = text;
  item.append(span);
}

function setStreaming(on) {
  sendButton.disabled = on;
  stopButton.disabled = !on;
}

function retryAfter(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return seconds > 0 ? ` in ${seconds} second${seconds === 1 ? "" : "s"}` : " in a moment";
}

async function problem(response) {
  // What went wrong, in words a person can act on.
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : (body.detail && body.detail[0] && body.detail[0].msg) || "";
  } catch (_) {
    // not JSON: the status says enough
  }
  switch (response.status) {
    case 401:
      return { key: true, text: "This server needs an API key (or the key was not accepted). Enter it above." };
    case 413:
      return { text: "That message is too long to send. Please shorten it." };
    case 422:
      return { text: "The message could not be sent: " + (detail || "it was not accepted.") };
    case 429:
      return { text: "The server is busy right now. Please try again" + retryAfter(response) + "." };
    case 503:
      return { text: "The model is not ready (it may still be starting). Please try again" + retryAfter(response) + "." };
    default:
      return { text: `Something went wrong on the server (${response.status}). Please try again.` };
  }
}

async function readEvents(response, onEvent) {
  // Server-sent events: blocks separated by a blank line; `data: ` lines carry JSON; `:` lines are pings.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
      }
    }
  }
}

async function send(text) {
  showStatus("");
  const userTurn = addTurn("user", text);
  const reply = addTurn("assistant", "");
  reply.classList.add("streaming");
  const replyText = reply.querySelector(".text");
  const sentHistory = history.slice();
  const mine = conversation;
  controller = new AbortController();
  setStreaming(true);
  let finished = null;
  const notices = {};
  try {
    const response = await fetch("stream_chat", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ message: text, conversation_history: sentHistory }),
      signal: controller.signal,
    });
    if (!response.ok) {
      const found = await problem(response);
      reply.remove();
      userTurn.remove();
      message.value = text; // nothing was said: let the person send it again
      if (found.key) askForKey(found.text);
      else showStatus(found.text);
      return;
    }
    await readEvents(response, (event) => {
      if (event.notice) {
        const card = notices[event.notice] || (notices[event.notice] = addNotice(event.notice, reply));
        card.textContent += event.token;
      } else if (!event.done) {
        replyText.textContent += event.token;
        reply.scrollIntoView({ block: "end" });
      } else {
        finished = event;
      }
    });
    if (finished && finished.finish_reason === "error") {
      note(reply, "The reply was cut short by a server error.");
      showStatus("The model failed partway through its reply. You can send your message again.");
    } else if (finished && finished.finish_reason === "length") {
      note(reply, "The reply reached its length limit.");
    }
  } catch (error) {
    if (error.name === "AbortError") {
      note(reply, "Stopped.");
    } else {
      showStatus("Could not reach the server. Check your connection and try again.");
      if (!replyText.textContent) {
        reply.remove();
        userTurn.remove();
        message.value = text;
        return;
      }
    }
  } finally {
    reply.classList.remove("streaming");
    controller = null;
    setStreaming(false);
    message.focus();
  }
  if (mine !== conversation) return;
  history = sentHistory.concat({ role: "user", content: text });
  if (replyText.textContent.trim()) history.push({ role: "assistant", content: replyText.textContent });
  else if (Object.keys(notices).length) reply.remove(); // the resources were the whole answer (policy block)
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = message.value.trim();
  if (!text || controller) return;
  message.value = "";
  send(text);
});

message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

stopButton.addEventListener("click", () => {
  if (controller) controller.abort(); // closes the stream: the server stops generating
});

$("new-conversation").addEventListener("click", () => {
  if (controller) controller.abort();
  conversation += 1;
  history = [];
  log.replaceChildren();
  showStatus("");
  message.value = "";
  message.focus();
});

$("save-key").addEventListener("click", () => {
  sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim());
  keyInput.value = "";
  showStatus("");
  keySection.hidden = true;
  message.focus();
});

keyInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    $("save-key").click();
  }
});

// Does this server need a key? Its model list answers 401 without a valid one.
fetch("v1/models", { headers: headers() })
  .then((response) => {
    if (response.status === 401) askForKey("This server needs an API key. Enter it above to start.");
  })
  .catch(() => {});
message.focus();
