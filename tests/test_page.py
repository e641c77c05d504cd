"""The web page and the HTML report in a real browser: Debian's chromium driven by Playwright.

Skipped where no chromium is installed (`.ci/run` installs it). Every test also records the
browser's requests and asserts that none leaves 127.0.0.1 (or, for the report, the file).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.artifact import save_model
from app.cli import main
from app.settings import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")]
EXPORT = Path(__file__).parent / "fixtures" / "linkedin" / "export"
TOKEN = "page-token"
SCAM = "Hello dear, I am a UN doctor in Yemen. Can we be friends? Add me on WhatsApp, I have a business proposal for you"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, db: Path, token: str | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env |= {"TRIAGE_MODEL_DIR": str(store), "TRIAGE_DB": str(db), "TRIAGE_RELOAD_POLL_SECONDS": "0"}
    if token:
        env["TRIAGE_API_TOKEN"] = token
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a bound on waiting, not a timing check: a loaded 2-core host is slow
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


@pytest.fixture(scope="module")
def store(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "model"
    save_model(tiny_model, path, tiny_model.manifest)
    return path


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    proc, base = start_server(store, tmp_path_factory.mktemp("db") / "f.db")
    yield base
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*args, "--no-first-run"])
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    pg.requested = []  # type: ignore[attr-defined]
    pg.blocked = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: pg.requested.append(r.url))  # type: ignore[attr-defined]
    blocked = lambda r: any(w in (r.failure or "").lower() for w in ("csp", "blocked"))
    pg.on("requestfailed", lambda r: pg.blocked.append(r.url) if blocked(r) else None)  # type: ignore[attr-defined]
    yield pg
    context.close()


def assert_local(page, base: str) -> None:
    """Every request the page made went to this server, or was stopped by its Content-Security-Policy before leaving."""
    page.wait_for_load_state("networkidle")
    outside = [u for u in page.requested if not (u.startswith(base) or u.startswith(("data:", "blob:", "file:", "about:")))]
    assert [u for u in outside if u not in page.blocked] == [], outside


def test_paste_a_message_and_see_the_verdict(server, page):
    page.goto(server + "/")
    page.fill("#text", SCAM)
    page.click("#check-button")
    page.wait_for_selector("#verdict", timeout=10_000)  # a bound on waiting; latency is measured by scripts/bench_api.py
    assert page.inner_text("#verdict") in {"genuine", "sales_pitch", "spam"}
    assert page.locator("#result .summary").inner_text().startswith("Looks like")
    assert page.locator("#result .bar .seg").count() == 3
    segments = [page.locator("#result .bar .seg").nth(i).bounding_box()["width"] for i in range(3)]
    assert abs(sum(segments) - page.locator("#result .bar").bounding_box()["width"]) < 3  # the scores fill the bar
    assert_local(page, server)


def test_open_an_export_see_its_conversations_and_correct_one(server, page):
    page.goto(server + "/")
    page.set_input_files("#files", [str(EXPORT / n) for n in ("messages.csv", "Invitations.csv", "Connections.csv")])
    page.click("#export-button")
    page.wait_for_selector("#conversation-rows tr.conversation", timeout=10_000)
    assert "Dana Reyes" in page.inner_text("#export-status")
    assert page.locator("#conversation-rows tr.conversation").count() >= 3
    page.select_option("#filter-verdict", "sales_pitch")
    first = page.locator("#conversation-rows tr.conversation").first
    assert "sales_pitch" in first.inner_text()
    first.click()
    detail = page.locator("#conversation-rows tr.detail").first
    detail.locator("button", has_text="genuine").first.click()
    page.wait_for_selector("text=Stored as genuine", timeout=5_000)
    stored = httpx.get(server + "/v1/feedback").json()
    assert stored["count"] >= 1 and stored["items"][-1]["label"] == "genuine"
    page.wait_for_function("Number(document.getElementById('waiting').textContent) >= 1", timeout=5_000)
    assert_local(page, server)


def test_the_model_page_shows_version_and_history(server, page, store):
    page.goto(server + "/ui/model")
    assert page.inner_text("#model-version") == store.joinpath("CURRENT").read_text().split()[0]
    assert "History" in page.content()


@pytest.mark.parametrize(("path", "selector"), [("/docs", ".swagger-ui .info"), ("/redoc", "h1")])
def test_api_docs_work_offline(server, page, path, selector):
    page.goto(server + path)
    page.wait_for_selector(selector, timeout=10_000)
    assert "inbound-triage" in page.content()
    assert_local(page, server)


def test_with_a_token_the_page_asks_for_it_once(store, browser, tmp_path):
    proc, base = start_server(store, tmp_path / "f.db", token=TOKEN)
    try:
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(base + "/")
        assert pg.url.endswith("/ui/login")
        pg.fill("input[name=token]", "wrong")
        pg.click("button[type=submit]")
        assert "not the token" in pg.content()
        pg.fill("input[name=token]", TOKEN)
        pg.click("button[type=submit]")
        pg.wait_for_url(base + "/")
        pg.fill("#text", SCAM)
        pg.click("#check-button")
        pg.wait_for_selector("#verdict", timeout=5_000)
        assert httpx.post(base + "/v1/score", json={"text": "hi"}).status_code == 401  # the API still needs the token
        context.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_report_is_one_file_that_makes_no_request(store, page, tmp_path):
    scored, report = tmp_path / "scored.csv", tmp_path / "report.html"
    assert main(["score", str(EXPORT), "-o", str(scored), "--model", str(store), "--jobs", "1", "--report", str(report)]) == 0
    page.goto(report.as_uri())
    page.wait_for_selector(".plotly", timeout=10_000)
    text = page.inner_text("body")
    for heading in ("Over time", "Worth replying to", "Review queue", "Most confident", "Top senders per verdict"):
        assert heading in text
    assert [u for u in page.requested if not u.startswith(("file:", "data:", "blob:", "about:"))] == []
