"""Takes docs/console.png: the web console in headless chromium against a real
`userapi` (a throwaway SQLite database with a few users), as a person sees it.

  "$(scripts/tools/ensure-venv.sh)/python" scripts/console/screenshot.py [OUTPUT.png]

or `make console-screenshot`. The binary is USERAPI_BIN (default
.build/debug/userapi, which must be current: the console's files are compiled
into it). Chromium comes from Debian (scripts/tools/ensure-apt.sh chromium),
Playwright from the tool venv (scripts/tools/requirements-console.txt).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
USERS = [
    ("Ada Lovelace", "ada", "ada@example.com"),
    ("Grace Hopper", "grace", "grace.hopper@example.org"),
    ("Alan Turing", "alan.turing", "alan@example.net"),
    ("Katherine Johnson", "kjohnson", "katherine@example.com"),
    ("Edsger Dijkstra", "ewd", "ewd@example.nl"),
]


def main() -> int:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else harness.ROOT / "docs/console.png").resolve()
    binary = (harness.ROOT / os.environ.get("USERAPI_BIN", ".build/debug/userapi")).resolve()
    if not os.access(binary, os.X_OK):
        sys.exit(f"screenshot: {binary} is not built (make build, or set USERAPI_BIN)")
    subprocess.run([str(harness.ROOT / "scripts/tools/ensure-apt.sh"), "chromium"], check=True)
    from playwright.sync_api import expect, sync_playwright

    token = "docs-" + secrets.token_hex(12)
    port = harness.free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="userapi-console-") as work:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_", "AUTH_", "HTTP_", "EVENTS_", "CONFIG_FILE", "ENV_FILE"))}
        env |= {"DATABASE_URL": f"sqlite:{work}/docs.sqlite", "AUTH_TOKENS": token, "LOG_ACCESS": "false",
                "INSTANCE_NAME": "userapi-7c9d5-x2k4q"}
        log = Path(work) / "userapi.log"
        with open(log, "wb") as out:
            server = subprocess.Popen([str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                      cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            harness.wait_for("userapi ready", lambda: harness.http("GET", url + "/readyz", timeout=2)[0] == 200,
                             process=server, log=log)
            for name, username, email in USERS:
                status, body = harness.http("POST", url + "/users", {"name": name, "username": username, "email": email},
                                            headers={"Authorization": f"Bearer {token}"})
                if status != 201:
                    sys.exit(f"screenshot: POST /users answered {status}: {body[:300]!r}")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(url + "/console/")
                page.fill("#token", token)
                page.click("#token-use")
                expect(page.locator("#live-text")).to_have_text("live")
                expect(page.locator("#users-body tr")).to_have_count(len(USERS))
                # A change arriving live, and a field error, as the console shows them.
                harness.http("PATCH", url + "/users/" + page.get_attribute("#users-body tr >> nth=1", "data-id"),
                             {"name": "Grace Brewster Hopper"},
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"})
                page.fill("#user-name", "Barbara Liskov")
                page.fill("#user-username", "b")
                page.fill("#user-email", "barbara@example.com")
                page.click("#user-submit")
                expect(page.locator("#user-username-error")).to_be_visible()
                expect(page.locator("#users-body tr >> nth=1")).to_contain_text("Grace Brewster Hopper")
                page.locator("#search").focus()
                output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(output), full_page=True)
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
