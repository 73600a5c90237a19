"""The web UI in a real browser (Debian's Chromium through Playwright) against the real host.

    .venv/bin/python -m pytest tests/test_web_ui.py -q

One host (`make run`, its own DATA_DIR) and one browser serve the whole module.
Screenshots of every page at 375 and 1440 px wide go to tests/artifacts/web/
(git-ignored).
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from python_worker.tests.test_adapters import make_adapter
from tests.corpus import write_corpus
from tests.host_process import ROOT, TINY_MODEL, HostProcess, get_json, post_json

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (python_worker/requirements.txt)")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=2</script>"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    if not (TINY_MODEL / "config.json").exists():
        pytest.fail(f"the tiny model is missing at {TINY_MODEL}; run `make model`")
    data_dir = tmp_path_factory.mktemp("web-host")
    # Two adapters in the registry, one with the metrics an evaluation leaves.
    make_adapter(TINY_MODEL, data_dir / "adapters" / "run1" / "stage1", seed=11)
    make_adapter(TINY_MODEL, data_dir / "adapters" / "run1" / "stage2", seed=12)
    metrics = {"eval_loss": 1.5, "pass@1": 0.25}
    (data_dir / "adapters" / "run1" / "stage1" / "metrics.json").write_text(json.dumps(metrics))
    with HostProcess(data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; `make apt` installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies: a new browser id) whose console errors fail the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.errors = errors
    yield tab
    context.close()
    assert errors == [], errors  # CSP violations and script errors show up here


def open_page(tab: Any, host: HostProcess, path: str) -> Any:
    response = tab.goto(host.url + path)
    tab.wait_for_selector("body[data-ready='1']")
    return response


def admin_token(host: HostProcess) -> str:
    return (host.data_dir / "admin_token").read_text().strip()


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# Records every text length the newest assistant message takes.
WATCH_LENGTHS = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const all = document.querySelectorAll('[data-testid=assistant-message]');
    if (all.length) window.__lengths.push(all[all.length - 1].innerText.length);
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""


def last_answer(tab: Any) -> Any:
    return tab.locator("[data-testid=assistant-message]").last


def test_enter_sends_shift_enter_breaks_the_line_and_the_answer_streams(host: HostProcess, page: Any) -> None:
    response = open_page(page, host, "/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page.evaluate(WATCH_LENGTHS)
    page.fill("#max-tokens", "120")
    # Greedy, so the answer cannot end by chance before a few tokens have streamed.
    page.fill("#temperature", "0")
    prompt = page.get_by_test_id("prompt")
    prompt.click()
    page.keyboard.type("defmodule Greeter do")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("  def hello, do: :world")
    assert prompt.input_value() == "defmodule Greeter do\n  def hello, do: :world"
    assert page.get_by_test_id("user-message").count() == 0  # Shift+Enter did not send
    with page.expect_request("**/v1/chat/completions") as sent:
        page.keyboard.press("Enter")
    assert {k: json.loads(sent.value.post_data)[k] for k in ("max_tokens", "temperature")} == {
        "max_tokens": 120,
        "temperature": 0,
    }

    page.wait_for_selector("[data-testid=assistant-message][data-done='1']", timeout=60_000)
    assert page.get_by_test_id("user-message").last.inner_text() == "defmodule Greeter do\n  def hello, do: :world"
    lengths = page.evaluate("window.__lengths")
    assert len({n for n in lengths if n > 0}) >= 3, lengths  # tokens arrived one after another
    assert last_answer(page).inner_text().strip()

    # The conversation is on the server: after a reload it is still there, and in the sidebar.
    conversation = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["c"][0]
    open_page(page, host, f"/?c={conversation}")
    assert page.get_by_test_id("user-message").count() == 1
    assert page.get_by_test_id("assistant-message").count() == 1
    assert page.locator(f"#conversations a[href='/?c={conversation}']").count() == 1
    # The model selector lists what /v1/models lists.
    _, models = get_json(f"{host.url}/v1/models")
    options = page.get_by_test_id("model").locator("option").all_inner_texts()
    assert options == [m["id"] for m in models["data"]]


def test_rename_and_delete_a_conversation(host: HostProcess, page: Any) -> None:
    open_page(page, host, "/")
    with page.expect_navigation():
        page.get_by_test_id("new-conversation").click()
    assert re.search(r"/\?c=", page.url)
    page.get_by_label("Title").fill("Renamed <b>here</b>")
    with page.expect_navigation():
        page.get_by_test_id("rename").click()
    assert page.locator("#conversations a").all_inner_texts() == ["Renamed <b>here</b>"]
    with page.expect_navigation():
        page.get_by_test_id("delete").click()
    assert page.url == host.url + "/"
    assert page.locator("#conversations a").count() == 0


def test_stop_cancels_the_generation_on_the_worker(host: HostProcess, page: Any) -> None:
    marker = "generation cancelled after"
    before = host.log_path.read_text(errors="replace").count(marker)
    open_page(page, host, "/")
    page.fill("#max-tokens", "1500")
    # The page samples (temperature 1), so the model may end an answer on its own
    # before Escape arrives; then the question is asked again.
    for _ in range(5):
        asked = page.get_by_test_id("assistant-message").count()
        page.get_by_test_id("prompt").fill("Write a long Elixir module")
        page.get_by_test_id("send").click()
        wait_for(
            lambda asked=asked: (
                page.get_by_test_id("assistant-message").count() > asked and last_answer(page).inner_text()
            ),
            60,
            "the first tokens",
        )
        stoppable = page.get_by_test_id("stop").is_enabled()
        page.keyboard.press("Escape")
        wait_for(lambda: last_answer(page).get_attribute("data-done") == "1", 30, "the answer to end")
        if page.locator("#chat-status").inner_text() == "Stopped.":
            assert stoppable
            break
    else:
        raise AssertionError("every answer ended before Escape")

    # The worker cancelled it: it logs how many tokens it had made, and the host has no generation open.
    def cancelled() -> list[str]:
        lines = [line for line in host.log_path.read_text(errors="replace").splitlines() if marker in line]
        return lines if len(lines) > before else []

    lines = wait_for(cancelled, 30, "the worker to cancel the generation")
    assert int(lines[-1].split(marker)[1].split()[0]) < 1500
    wait_for(
        lambda: (host.health() or {}).get("worker", {}).get("generations_in_flight") == 0, 10, "no generation in flight"
    )


def test_model_and_user_html_show_as_text_and_never_run(host: HostProcess, page: Any) -> None:
    open_page(page, host, "/")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    headers = {"x-csrf-token": token, "content-type": "application/json"}
    created = page.request.post(f"{host.url}/ui/conversations", data="{}", headers=headers).json()
    payload = f"{XSS_IMG} and {XSS_SCRIPT}"
    answer = f"Here: {XSS_IMG}\n\n{XSS_SCRIPT}\n\n```elixir\n{XSS_SCRIPT}\n```\n"
    for role, content in (("user", payload), ("assistant", answer)):
        reply = page.request.post(
            f"{host.url}/ui/conversations/{created['id']}/messages",
            data=json.dumps({"role": role, "content": content}),
            headers=headers,
        )
        assert reply.ok, reply.text()

    response = open_page(page, host, f"/?c={created['id']}")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert page.get_by_test_id("user-message").inner_text() == payload
    shown = page.get_by_test_id("assistant-message").inner_text()
    assert XSS_IMG in shown and XSS_SCRIPT in shown
    # Nothing of it became markup, and nothing ran.
    assert page.locator("#messages img, #messages script").count() == 0
    assert page.evaluate("window.__xss") is None
    # The code block got Elixir highlighting and a copy button.
    assert page.locator("#messages pre code.hljs").count() == 1
    assert page.locator("#messages pre button.copy").count() == 1

    # A user message typed into the page shows as text too.
    page.get_by_test_id("prompt").fill(payload)
    page.fill("#max-tokens", "8")
    page.get_by_test_id("send").click()
    page.wait_for_selector("[data-testid=assistant-message][data-done='1']", timeout=60_000)
    assert page.get_by_test_id("user-message").last.inner_text() == payload
    assert page.locator("#messages img, #messages script").count() == 0
    assert page.evaluate("window.__xss") is None


class Browserless:
    """A cookie-keeping HTTP client: one browser as far as the host can tell."""

    def __init__(self, host: HostProcess) -> None:
        self.host = host
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: str | bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.host.port, timeout=120)
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie_name, cookie_value = value.split(";", 1)[0].split("=", 1)
                self.cookies[cookie_name] = cookie_value
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def csrf(self) -> str:
        _, _, page = self.request("GET", "/")
        match = re.search(rb'<meta name="csrf-token" content="([^"]+)">', page)
        assert match, page[:300]
        return match.group(1).decode()

    def form(self, path: str, fields: dict[str, str], csrf: str | None = None) -> tuple[int, dict[str, str], bytes]:
        if csrf is not None:
            fields = {**fields, "_csrf": csrf}
        body = urllib.parse.urlencode(fields)
        return self.request("POST", path, body, {"content-type": "application/x-www-form-urlencoded"})


def test_admin_actions_need_a_session_and_the_csrf_token(host: HostProcess, tmp_path: Path) -> None:
    client = Browserless(host)
    csrf = client.csrf()
    sample = ROOT / "elixir" / "test" / "devstral_elixir" / "scrape" / "fixtures" / "sample"
    job = {
        "type": "scrape",
        "args": json.dumps({"source": "local", "paths": [str(sample)], "out": str(tmp_path / "s")}),
    }

    # No session: refused, even with the CSRF token.
    assert client.form("/ui/jobs", job, csrf)[0] == 401
    assert client.form("/ui/adapters/rollback", {}, csrf)[0] == 401
    assert client.form("/ui/jobs/1/cancel", {}, csrf)[0] == 401

    # A wrong token does not log in; the admin token does, with a strict, HttpOnly cookie.
    assert client.form("/login", {"token": "nope"}, csrf)[0] == 401
    assert client.form("/login", {"token": admin_token(host)})[0] == 403  # no CSRF token
    status, headers, _ = client.form("/login", {"token": admin_token(host)}, csrf)
    assert status == 303
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
    assert "devstral_session" in client.cookies

    # A session without the CSRF token (or with another browser's) is refused.
    assert client.form("/ui/jobs", job)[0] == 403
    assert client.form("/ui/jobs", job, "forged")[0] == 403
    assert client.form("/ui/jobs", job, Browserless(host).csrf())[0] == 403
    assert client.form("/ui/adapters/rollback", {})[0] == 403
    status, _, _ = client.request("POST", "/ui/jobs", json.dumps(job), {"content-type": "application/json"})
    assert status == 403

    # With both it goes through.
    status, headers, _ = client.form("/ui/jobs", job, csrf)
    assert status == 303 and re.fullmatch(r"/jobs/\d+", headers["location"]), headers
    job_id = int(headers["location"].rsplit("/", 1)[1])
    wait_for(lambda: get_json(f"{host.url}/api/jobs/{job_id}")[1]["state"] == "succeeded", 60, "the scrape job")
    assert client.form(f"/ui/jobs/{job_id}/cancel", {}, csrf)[0] == 409  # already finished
    status, headers, _ = client.form(f"/ui/jobs/{job_id}/retry", {}, csrf)
    assert status == 303 and headers["location"] != f"/jobs/{job_id}"
    _, retried = get_json(f"{host.url}/api/{headers['location'].lstrip('/')}")
    assert (retried["type"], retried["args"]) == ("scrape", json.loads(job["args"]))
    # Logged out, the same request is refused again.
    assert client.form("/logout", {}, csrf)[0] == 303
    assert client.form("/ui/jobs", job, csrf)[0] == 401


def test_a_job_appears_and_progresses_live_and_its_dataset_is_shown(
    host: HostProcess, page: Any, tmp_path: Path
) -> None:
    open_page(page, host, "/jobs")
    page.evaluate("window.__marker = 'no reload'")
    page.wait_for_function("document.querySelector('#job-rows') && window.htmx")
    page.evaluate(
        """() => {
      window.__progress = [];
      new MutationObserver(() => {
        for (const row of document.querySelectorAll('[data-testid=job-row]'))
          window.__progress.push(row.dataset.jobId + ':' + row.dataset.state + ':' +
            row.querySelector('[data-testid=job-progress]').value);
      }).observe(document.getElementById('job-rows'), {childList: true, subtree: true});
    }"""
    )
    corpus = write_corpus(tmp_path / "raw")
    out = host.data_dir / "datasets" / "web"
    status, job = post_json(
        f"{host.url}/api/jobs",
        {"type": "build_dataset", "args": {"inputs": [str(corpus)], "out": str(out)}},
        token=admin_token(host),
    )
    assert status == 201, job
    row = page.locator(f"[data-testid=job-row][data-job-id='{job['id']}']")
    row.wait_for(timeout=10_000)
    page.wait_for_selector(f"[data-testid=job-row][data-job-id='{job['id']}'][data-state=succeeded]", timeout=120_000)
    seen = [entry for entry in page.evaluate("window.__progress") if entry.startswith(f"{job['id']}:")]
    assert len(set(seen)) >= 2, seen  # it changed in place
    assert page.evaluate("window.__marker") == "no reload"
    assert row.get_by_test_id("job-progress").get_attribute("value") == "100"

    # Its page: the log of its events and the loss chart.
    open_page(page, host, f"/jobs/{job['id']}")
    assert page.locator("#job-log li").count() > 1
    assert page.get_by_test_id("loss-chart").count() == 1

    # The dataset it built, with its report rendered as HTML (headings, chart images).
    open_page(page, host, "/datasets")
    report = page.locator(".report").first
    assert report.locator("h1, h2").count() > 0
    images = report.locator("img")
    assert images.count() > 0
    assert page.evaluate("Array.from(document.querySelectorAll('.report img')).every(i => i.naturalWidth > 0)")


def test_an_admin_activates_and_rolls_back_an_adapter(host: HostProcess, page: Any) -> None:
    open_page(page, host, "/adapters")
    rows = page.get_by_test_id("adapter-row")
    assert rows.count() == 2
    assert page.get_by_test_id("activate").count() == 0  # not logged in: no admin controls
    stage1 = page.locator("[data-testid=adapter-row][data-adapter='run1/stage1']")
    assert stage1.get_by_test_id("pass-at-1").inner_text() == "0.2500"
    assert page.locator("[data-adapter='run1/stage2'] [data-testid=pass-at-1]").inner_text() == "not evaluated"

    # Log in with the admin token through the form, with the keyboard.
    open_page(page, host, "/login?next=/adapters")
    page.get_by_label("Token").fill(admin_token(host))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == host.url + "/adapters"
    with page.expect_navigation():
        stage1.get_by_test_id("activate").click()
    assert "activated run1/stage1" in page.get_by_test_id("notice").inner_text()
    assert page.get_by_test_id("active-adapter").inner_text() == "run1/stage1"
    # The assistant's model selector now offers the adapter.
    open_page(page, host, "/")
    page.wait_for_function("document.querySelectorAll('[data-testid=model] option').length > 1")
    assert "tiny-elixir:run1/stage1" in page.get_by_test_id("model").locator("option").all_inner_texts()

    open_page(page, host, "/adapters")
    with page.expect_navigation():
        page.get_by_test_id("rollback").click()
    assert page.get_by_test_id("active-adapter").inner_text() == "base model"


@pytest.mark.parametrize("width", [375, 1440])
def test_every_page_at_phone_and_desktop_width(host: HostProcess, browser: Any, width: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _, jobs = get_json(f"{host.url}/api/jobs?limit=1")
    pages = {"assistant": "/", "jobs": "/jobs", "datasets": "/datasets", "adapters": "/adapters", "login": "/login"}
    if jobs["jobs"]:
        pages["job"] = f"/jobs/{jobs['jobs'][0]['id']}"
    try:
        for name, path in pages.items():
            response = open_page(tab, host, path)
            assert response.status == 200, (path, response.status)
            assert "default-src 'self'" in response.headers["content-security-policy"]
            tab.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
            # Nothing wider than the screen (wide tables scroll in their own box).
            overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, width, overflow)
            # Every form control has a label.
            unlabelled = tab.evaluate(
                """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
                   .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.name)"""
            )
            assert unlabelled == [], (path, unlabelled)
    finally:
        context.close()
    assert errors == [], errors


def chat_session(host: HostProcess, n: int) -> dict[str, Any]:
    """One browser's whole exchange through the app's endpoints; returns what the host stored."""
    client = Browserless(host)
    csrf = client.csrf()
    headers = {"content-type": "application/json", "x-csrf-token": csrf}
    status, _, body = client.request("POST", "/ui/conversations", "{}", headers)
    assert status == 201, body
    conv = json.loads(body)["id"]
    text = f"session {n}: explain Enum.map number {n}"
    status, _, body = client.request(
        "POST", f"/ui/conversations/{conv}/messages", json.dumps({"role": "user", "content": text}), headers
    )
    assert status == 200, body
    history = [{"role": m["role"], "content": m["content"]} for m in json.loads(body)["messages"]]
    # Greedy: a sampled answer may be empty (end of text first).
    request = json.dumps({"messages": history, "stream": True, "max_tokens": 48, "temperature": 0})
    status, _, raw = client.request("POST", "/v1/chat/completions", request, headers)
    assert status == 200, raw
    chunks = [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: {")]
    answer = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert raw.decode().rstrip().endswith("data: [DONE]")
    stored = json.dumps({"role": "assistant", "content": answer})
    assert client.request("POST", f"/ui/conversations/{conv}/messages", stored, headers)[0] == 200
    _, _, listing = client.request("GET", "/ui/conversations")
    _, _, full = client.request("GET", f"/ui/conversations/{conv}")
    return {
        "n": n,
        "text": text,
        "answer": answer,
        "stream_ids": {c["id"] for c in chunks},
        "listing": json.loads(listing)["conversations"],
        "conversation": json.loads(full),
    }


def test_twenty_chat_sessions_at_once_each_keep_only_their_own_text(host: HostProcess) -> None:
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda n: chat_session(host, n), range(20)))
    assert len({next(iter(r["stream_ids"])) for r in results}) == 20
    for r in results:
        assert len(r["stream_ids"]) == 1  # every chunk of a stream belongs to that one stream
        assert r["answer"]
        assert [c["id"] for c in r["listing"]] == [r["conversation"]["id"]]  # a browser sees only its own
        messages = r["conversation"]["messages"]
        assert [(m["role"], m["content"]) for m in messages] == [("user", r["text"]), ("assistant", r["answer"])]
