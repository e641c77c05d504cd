"""The README's screenshots of the page and the HTML report, taken with Debian's chromium.

Starts the service on the shipped model (a scratch feedback store), checks a message,
opens one of the test inboxes' exports, expands a conversation, and renders `triage report`
for that inbox; writes docs/page-check.png, docs/page-inbox.png and docs/report.png.

    python scripts/screenshots.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.cli import main as triage  # noqa: E402
from app.corpus import rendered_inboxes  # noqa: E402

DOCS = ROOT / "docs"
MESSAGE = (
    "Hi Dana, I was impressed with your profile! We help SaaS teams triple their pipeline with AI-powered outbound. "
    "Do you have 15 minutes on Thursday?"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")} | {"TRIAGE_DB": str(db)}
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the service did not start")


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium: apt-get install chromium", file=sys.stderr)
        return 2
    inbox = sorted(p for p in rendered_inboxes(ROOT / "data", "test").iterdir() if p.is_dir())[0]
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = serve(Path(tmp) / "feedback.db")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(base + "/")
                page.fill("#text", MESSAGE)
                page.click("#check-button")
                page.wait_for_selector("#result .summary")
                page.locator("#check").screenshot(path=str(DOCS / "page-check.png"))
                page.set_input_files("#files", [str(inbox / n) for n in ("messages.csv", "Invitations.csv", "Connections.csv")])
                page.click("#export-button")
                page.wait_for_selector("#conversation-rows tr.conversation")
                page.locator("#conversation-rows tr.conversation").first.click()
                box = page.locator("#export").bounding_box()
                clip = {
                    "x": box["x"],
                    "y": box["y"] + page.evaluate("window.scrollY"),
                    "width": box["width"],
                    "height": min(box["height"], 1100),
                }
                page.screenshot(path=str(DOCS / "page-inbox.png"), clip=clip, full_page=True)
                scored = Path(tmp) / "scored.csv"
                report = Path(tmp) / "report.html"
                triage(["score", str(inbox), "-o", str(scored), "--quiet", "--jobs", "1"])
                triage(["report", str(scored), "-o", str(report)])
                page.goto(report.as_uri())
                page.wait_for_timeout(1500)
                page.screenshot(path=str(DOCS / "report.png"), full_page=False)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"wrote {DOCS / 'page-check.png'}, {DOCS / 'page-inbox.png'}, {DOCS / 'report.png'} (inbox {inbox.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
