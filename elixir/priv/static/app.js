// The web UI's own script (served as a file: the CSP allows no inline script).
// It renders Markdown safely (markdown-it with raw HTML off, then DOMPurify),
// highlights code (highlight.js, Elixir by default) with a copy button per
// block, and runs the assistant: stream an answer from /v1/chat/completions,
// stop it (button or Esc: aborting the request makes the host cancel the
// generation on the worker), and store both sides of the conversation.
"use strict";

(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // ---------------------------------------------------------------- Markdown
  let md = null;
  function markdown() {
    if (md) return md;
    md = window.markdownit({
      html: false, // raw HTML in model output is shown as text, never parsed
      linkify: true,
      highlight(code, lang) {
        const language = lang && hljs.getLanguage(lang) ? lang : "elixir";
        try {
          return hljs.highlight(code, { language, ignoreIllegals: true }).value;
        } catch (_e) {
          return ""; // markdown-it escapes the code itself
        }
      },
    });
    return md;
  }

  function render(el, text) {
    const base = el.dataset.base || "";
    const html = DOMPurify.sanitize(markdown().render(text), { USE_PROFILES: { html: true } });
    el.innerHTML = html;
    el.querySelectorAll("pre > code").forEach((code) => {
      code.classList.add("hljs");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy this code");
      button.addEventListener("click", () => copy(code.textContent, button));
      code.parentElement.insertBefore(button, code);
    });
    if (base) {
      el.querySelectorAll("img").forEach((img) => {
        const src = img.getAttribute("src") || "";
        if (!/^[a-z]+:|^\//i.test(src)) img.src = base + src.replace(/^\.\//, "");
      });
    }
  }

  function copy(text, button) {
    const done = () => {
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, () => {});
  }

  function renderAll(root) {
    root.querySelectorAll("[data-markdown]").forEach((el) => {
      if (el.dataset.rendered) return;
      el.dataset.rendered = "1";
      const text = el.textContent;
      el.raw = text;
      render(el, text);
    });
  }

  // ---------------------------------------------------------------- sources
  function sourceLabel(s) {
    if (typeof s === "string") return s;
    if (s && typeof s === "object") {
      const label = s.title || s.path || s.source || s.uri || s.id || JSON.stringify(s);
      return typeof s.score === "number" ? `${label} (${s.score.toFixed(3)})` : String(label);
    }
    return String(s);
  }

  function sourcesList(sources) {
    const ul = document.createElement("ul");
    ul.className = "sources";
    ul.dataset.testid = "sources";
    ul.setAttribute("aria-label", "Sources");
    for (const s of sources) {
      const li = document.createElement("li");
      li.textContent = sourceLabel(s);
      ul.appendChild(li);
    }
    return ul;
  }

  function findSources(chunk) {
    if (!chunk || typeof chunk !== "object") return null;
    const choice = (chunk.choices && chunk.choices[0]) || {};
    const found = chunk.sources || choice.sources || (choice.delta && choice.delta.sources) ||
      (choice.message && choice.message.sources);
    return Array.isArray(found) ? found : null;
  }

  // ---------------------------------------------------------------- HTTP
  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    return data;
  }

  // Reads an SSE body, calling onEvent with each `data:` payload.
  async function readSSE(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data) onEvent(data);
      }
    }
  }

  // ---------------------------------------------------------------- the assistant
  function setupChat(chat) {
    const form = document.getElementById("chat-form");
    const prompt = document.getElementById("prompt");
    const send = document.getElementById("send");
    const stop = document.getElementById("stop");
    const status = document.getElementById("chat-status");
    const model = document.getElementById("model");
    const maxTokens = document.getElementById("max-tokens");
    const temperature = document.getElementById("temperature");
    const messages = document.getElementById("messages");
    let controller = null;

    fetch("/v1/models", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((listing) => {
        if (!listing || !Array.isArray(listing.data)) return;
        model.textContent = "";
        for (const m of listing.data) {
          const option = document.createElement("option");
          option.value = m.id;
          option.textContent = m.id;
          model.appendChild(option);
        }
        const saved = localStorage.getItem("model");
        if (saved && listing.data.some((m) => m.id === saved)) model.value = saved;
      })
      .catch(() => {});
    model.addEventListener("change", () => localStorage.setItem("model", model.value));

    prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && controller) {
        event.preventDefault();
        controller.abort();
      }
    });
    stop.addEventListener("click", () => controller && controller.abort());

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = prompt.value;
      if (!text.trim() || controller) return;
      controller = new AbortController();
      send.disabled = true;
      stop.disabled = false;
      status.textContent = "Generating…";
      prompt.value = "";
      let answer = null;
      let content = "";
      let sources = null;
      try {
        let id = chat.dataset.conversation;
        if (!id) {
          id = (await postJSON("/ui/conversations", {})).id;
          chat.dataset.conversation = id;
          history.replaceState(null, "", "/?c=" + encodeURIComponent(id));
        }
        const conversation = await postJSON(`/ui/conversations/${encodeURIComponent(id)}/messages`, {
          role: "user", content: text,
        });
        const user = document.createElement("div");
        user.className = "msg user";
        user.dataset.testid = "user-message";
        user.textContent = text;
        messages.appendChild(user);
        const box = document.createElement("div");
        box.className = "msg assistant";
        answer = document.createElement("div");
        answer.className = "markdown streaming";
        answer.dataset.testid = "assistant-message";
        box.appendChild(answer);
        messages.appendChild(box);
        box.scrollIntoView({ block: "end" });

        const body = {
          messages: conversation.messages.map((m) => ({ role: m.role, content: m.content })),
          stream: true,
          max_tokens: parseInt(maxTokens.value, 10) || 256,
        };
        if (model.value) body.model = model.value;
        // An empty or invalid field leaves the API's default (1).
        const t = parseFloat(temperature.value);
        if (Number.isFinite(t)) body.temperature = t;
        const response = await fetch("/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json", "x-csrf-token": csrf() },
          body: JSON.stringify(body),
          signal: controller.signal,
          credentials: "same-origin",
        });
        if (!response.ok) {
          const error = await response.json().catch(() => ({}));
          throw new Error((error.error && error.error.message) || `HTTP ${response.status}`);
        }
        let pending = false;
        await readSSE(response, (data) => {
          if (data === "[DONE]") return;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const choice = chunk.choices && chunk.choices[0];
          if (choice && choice.delta && choice.delta.content) content += choice.delta.content;
          sources = findSources(chunk) || sources;
          if (!pending) {
            pending = true;
            requestAnimationFrame(() => {
              pending = false;
              render(answer, content);
            });
          }
        });
        status.textContent = "";
      } catch (error) {
        status.textContent = error.name === "AbortError" ? "Stopped." : `Error: ${error.message}`;
      } finally {
        if (answer) {
          render(answer, content);
          answer.classList.remove("streaming");
          answer.dataset.rendered = "1";
          answer.dataset.done = "1";
          if (sources && sources.length) answer.parentElement.appendChild(sourcesList(sources));
          if (content) {
            const stored = { role: "assistant", content, model: model.value || "" };
            if (sources) stored.sources = sources;
            await postJSON(`/ui/conversations/${encodeURIComponent(chat.dataset.conversation)}/messages`, stored)
              .catch((e) => (status.textContent = `Not saved: ${e.message}`));
          }
          refreshSidebar(chat.dataset.conversation);
        }
        controller = null;
        send.disabled = false;
        stop.disabled = true;
        prompt.focus();
      }
    });
  }

  async function refreshSidebar(current) {
    const list = document.getElementById("conversations");
    const response = await fetch("/ui/conversations", { credentials: "same-origin" });
    if (!response.ok) return;
    const { conversations } = await response.json();
    list.textContent = "";
    for (const c of conversations) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/?c=" + encodeURIComponent(c.id);
      a.textContent = c.title;
      if (c.id === current) a.setAttribute("aria-current", "page");
      li.appendChild(a);
      list.appendChild(li);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    renderAll(document);
    const chat = document.getElementById("chat");
    if (chat) setupChat(chat);
    document.body.dataset.ready = "1";
  });
})();
