"""make test-console: the web console (/console/) in a real browser.

Static checks first (no browser, no server): index.html has no inline script
or style (the console's CSP forbids them), every control is labelled, the
script has no eval, innerHTML or style writes and parses (node --check).

Then against a real `userapi` (SQLite, a read-write and a read-only token)
in Debian's chromium, headless, driven by Playwright (scripts/tools/
requirements-console.txt; never `playwright install`): the console's
files are the ones in the repository and carry the CSP; two pages in two
browser contexts enter the token, page A creates a user with the keyboard
only and page B shows it live, without reloading; A edits it and B shows
the change; a 422 shows under its field; a read-only token's 403 is
explained; A deletes it after the inline confirm and B drops it; the search
filters; the layout fits 320 px; the status page uses console.css; no CSP
violation and no script error in any page. Last, the server restarts on the
same port and the console reconnects by itself and resumes from its last
seq: a user created while it was away appears.

Screenshots go to the test's tmp_path and, when ARTIFACTS_DIR is set, there too.
The docs screenshot (docs/console.png) is scripts/console/screenshot.py.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import harness
from harness import ROOT, assert_none, unavailable

pytestmark = pytest.mark.console

ASSETS = ROOT / "Sources/UserAPI/Resources/console"
CHROMIUM = "/usr/bin/chromium"
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
          "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# Playwright waits (ms): generous, a 2-core machine may be compiling next door.
WAIT_MS = int(float(os.environ.get("USERAPI_TEST_WAIT_LIMIT", "60")) * 1000)


# ---- static checks ----------------------------------------------------------------


class Page(HTMLParser):
    """Every start tag of a document, with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None], int]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs), self.getpos()[0]))

    handle_startendtag = handle_starttag


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    page.close()
    return page


def test_index_has_no_inline_script_or_style():
    page = parse(ASSETS / "index.html")
    problems = []
    for tag, attrs, line in page.tags:
        if tag == "script" and not attrs.get("src"):
            problems.append(f"line {line}: <script> without src (inline script is refused by the CSP)")
        if tag == "style":
            problems.append(f"line {line}: <style> element (inline style is refused by the CSP)")
        if "style" in attrs:
            problems.append(f"line {line}: <{tag} style=...> (inline style is refused by the CSP)")
        for name in attrs:
            if name.startswith("on"):
                problems.append(f"line {line}: <{tag} {name}=...> (inline handler is refused by the CSP)")
        for name in ("src", "href", "action"):
            value = attrs.get(name) or ""
            if re.match(r"^(https?:)?//", value):
                problems.append(f"line {line}: <{tag} {name}={value}>: an external resource")
    assert_none(problems, "index.html")


def test_index_is_accessible_markup():
    page = parse(ASSETS / "index.html")
    problems = []
    html = next((a for t, a, _ in page.tags if t == "html"), {})
    if html.get("lang") != "en":
        problems.append('<html> needs lang="en"')
    if not any(t == "meta" and a.get("name") == "viewport" for t, a, _ in page.tags):
        problems.append('no <meta name="viewport">')
    ids = [a["id"] for _, a, _ in page.tags if a.get("id")]
    problems += [f'id "{i}" is used more than once' for i in sorted({i for i in ids if ids.count(i) > 1})]
    labelled = {a.get("for") for t, a, _ in page.tags if t == "label"}
    for tag, attrs, line in page.tags:
        if tag in ("input", "select", "textarea") and attrs.get("type") != "hidden":
            if attrs.get("id") not in labelled and not attrs.get("aria-label"):
                problems.append(f"line {line}: <{tag} id={attrs.get('id')}> has no <label for>")
        for ref in (attrs.get("aria-describedby") or "").split():
            if ref not in ids:
                problems.append(f"line {line}: aria-describedby names a missing id {ref}")
        if tag == "button" and attrs.get("type") not in ("button", "submit", "reset"):
            problems.append(f"line {line}: <button> without an explicit type")
    for name in ("token", "token-forget", "user-form", "user-name", "user-username", "user-email", "user-submit",
                 "search", "users-body", "first-page", "next-page", "live", "instance"):
        if name not in ids:
            problems.append(f"no element with id {name} (the test and the script use it)")
    if not any(a.get("id") == "token" and a.get("type") == "password" for _, a, _ in page.tags):
        problems.append("the token field is not type=password")
    if not any(a.get("id") == "live" and a.get("aria-live") == "polite" for _, a, _ in page.tags):
        problems.append('the live indicator has no aria-live="polite"')
    assert_none(problems, "index.html")


def test_script_and_style_follow_the_policy():
    script = (ASSETS / "console.js").read_text()
    style = (ASSETS / "console.css").read_text()
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", script, flags=re.S)  # comments may name what is avoided
    problems = [f"console.js: {what}" for pattern, what in [
        (r"\beval\s*\(", "eval"), (r"new\s+Function\b", "new Function"), (r"\.innerHTML\b|\.outerHTML\b", "innerHTML"),
        (r"insertAdjacentHTML|document\.write", "HTML from strings"), (r"\.style\s*[.=\[]|setAttribute\(\s*[\"']style",
                                                                        "inline style"),
        (r"\blocalStorage\b", "localStorage (the token belongs in sessionStorage)"),
        (r"setTimeout\(\s*[\"']|setInterval\(\s*[\"']", "a timer with a string"),
        (r"https?://", "an absolute URL"),
    ] if re.search(pattern, code)]
    problems += [f"console.css: {what}" for pattern, what in [
        (r"@import", "@import"), (r"url\(\s*[\"']?(https?:)?//", "an external url()"), (r"@font-face", "a web font"),
    ] if re.search(pattern, style)]
    assert_none(problems)


def test_script_parses():
    node = shutil.which("node")
    if not node:
        unavailable("node: not on PATH (checks that console.js parses)")
    run = subprocess.run([node, "--check", str(ASSETS / "console.js")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# ---- the real server and browser -------------------------------------------------------------

TOKEN = "console-" + secrets.token_hex(12)
READ_ONLY = "console-ro-" + secrets.token_hex(12)


def server_env(database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "AUTH_", "HTTP_", "EVENTS_", "CONFIG_FILE", "ENV_FILE"))}
    return env | {"DATABASE_URL": database, "AUTH_TOKENS": f"{TOKEN},ro:{READ_ONLY}", "LOG_ACCESS": "false",
                  "LOG_FORMAT": "json", "INSTANCE_NAME": "console-test"}


@pytest.fixture(scope="module")
def server(start_userapi, tmp_path_factory):
    db = tmp_path_factory.mktemp("console-db") / "console.sqlite"
    return start_userapi("console", env=server_env(f"sqlite:{db}"))


@pytest.fixture(scope="module")
def chromium():
    """Playwright's chromium, launched from Debian's package (scripts/tools/ensure-apt.sh chromium)."""
    apt = subprocess.run([str(ROOT / "scripts/tools/ensure-apt.sh"), "chromium"], capture_output=True, text=True)
    if apt.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
        unavailable(f"chromium: not installed ({CHROMIUM}; scripts/tools/ensure-apt.sh chromium: "
                    f"{apt.stderr.strip()[-400:] or 'exit ' + str(apt.returncode)})")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        unavailable(f"playwright: not in the tool venv (scripts/tools/requirements-console.txt): {exc}")
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        # Headless. Playwright passes --no-sandbox itself (chromium_sandbox defaults to False),
        # which Chromium needs when it runs as root, as it does in this sandbox and in CI.
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, timeout=WAIT_MS)
        except Exception as exc:  # noqa: BLE001 - any launch failure means no browser here
            unavailable(f"chromium does not start headless: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def artefacts(tmp_path):
    """shot(page, name): a screenshot into tmp_path, copied to ARTIFACTS_DIR when set."""
    target = Path(os.environ["ARTIFACTS_DIR"]) / "console" if os.environ.get("ARTIFACTS_DIR") else None

    def shot(page, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if target:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        return path

    return shot


class Watched:
    """A page with what it reported: console messages, script errors and CSP violations."""

    def __init__(self, context, name: str) -> None:
        self.name = name
        self.page = context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.messages: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # Runs before the page's own script (injected by the browser, not subject to the CSP).
        self.page.add_init_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation', "
            "e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sourceFile || '') "
            "+ ':' + e.lineNumber));")

    def problems(self) -> list[str]:
        found = [f"{self.name}: script error: {e}" for e in self.errors]
        found += [f"{self.name}: console: {m}" for m in self.messages
                  if "Content Security Policy" in m or "Refused to" in m]
        try:
            found += [f"{self.name}: CSP violation: {v}" for v in self.page.evaluate("window.__csp || []")]
        except Exception as exc:  # noqa: BLE001 - a closed page has nothing more to say
            found.append(f"{self.name}: could not read CSP violations: {exc}")
        return found


def open_console(context, url: str, name: str, token: str = TOKEN) -> Watched:
    from playwright.sync_api import expect

    watched = Watched(context, name)
    page = watched.page
    page.goto(url + "/console/")
    expect(page.locator("#live-text")).to_have_text("offline")
    page.fill("#token", token)
    page.click("#token-use")
    expect(page.locator("#live-text")).to_have_text("live")
    expect(page.locator("#instance")).to_contain_text("console-test")
    return watched


def row(page, username: str):
    return page.locator("#users-body tr", has=page.locator('td[data-field="username"]', has_text=re.compile(
        "^" + re.escape(username) + "$")))


def test_console_files_are_served_with_the_policy(server):
    for path, name, kind in [("/console/", "index.html", "text/html"), ("/console", "index.html", "text/html"),
                             ("/console/console.js", "console.js", "javascript"),
                             ("/console/console.css", "console.css", "text/css")]:
        status, headers, body = get(server.url + path)
        assert status == 200, f"GET {path}: {status} {body[:200]!r}"
        assert kind in headers.get("Content-Type", ""), f"GET {path}: Content-Type {headers.get('Content-Type')}"
        assert body == (ASSETS / name).read_bytes(), (
            f"GET {path} is not {ASSETS / name} as in the work tree: the binary is older than the file (make build)")
        if name == "index.html":
            assert headers.get("Content-Security-Policy") == POLICY, f"GET {path}: CSP {headers.get('Content-Security-Policy')}"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_two_pages_live(server, chromium, artefacts):
    from playwright.sync_api import expect

    ctx_a, ctx_b = chromium.new_context(viewport={"width": 1280, "height": 900}), chromium.new_context(
        viewport={"width": 1280, "height": 900})
    pages: list[Watched] = []
    try:
        a = open_console(ctx_a, server.url, "page A")
        b = open_console(ctx_b, server.url, "page B")
        pages += [a, b]
        # The token lives in sessionStorage only, never localStorage or the URL.
        assert a.page.evaluate("Object.values(sessionStorage)") == [TOKEN]
        assert a.page.evaluate("Object.keys(localStorage).length") == 0
        assert TOKEN not in a.page.url
        b.page.evaluate("window.__notReloaded = true")

        # Keyboard only: from the token field, Tab to the create form, type, Enter.
        a.page.focus("#token")
        for _ in range(12):
            a.page.keyboard.press("Tab")
            if a.page.evaluate("document.activeElement.id") == "user-name":
                break
        assert a.page.evaluate("document.activeElement.id") == "user-name", "Tab never reached the create form"
        outline = a.page.evaluate("(s => s.outlineStyle + ' ' + s.outlineWidth)(getComputedStyle(document.activeElement))")
        assert not outline.startswith("none") and not outline.endswith(" 0px"), f"no visible focus: outline {outline}"
        a.page.keyboard.type("Ada Lovelace")
        a.page.keyboard.press("Tab")
        a.page.keyboard.type("ada")
        a.page.keyboard.press("Tab")
        a.page.keyboard.type("ada@example.com")
        a.page.keyboard.press("Enter")
        expect(a.page.locator("#form-status")).to_contain_text("Created ada")
        expect(row(a.page, "ada")).to_have_count(1)

        # Page B shows it live.
        expect(row(b.page, "ada")).to_have_count(1)
        expect(row(b.page, "ada").locator('td[data-field="name"]')).to_have_text("Ada Lovelace")
        artefacts(a.page, "a-created")
        artefacts(b.page, "b-created-live")

        # A edits it; B shows the change.
        row(a.page, "ada").locator('[data-action="edit"]').click()
        expect(a.page.locator("#user-name")).to_have_value("Ada Lovelace")
        expect(a.page.locator("#user-submit")).to_have_text("Save changes")
        a.page.fill("#user-name", "Ada King")
        a.page.click("#user-submit")
        expect(a.page.locator("#form-status")).to_contain_text("Saved ada")
        expect(row(b.page, "ada").locator('td[data-field="name"]')).to_have_text("Ada King")
        expect(row(a.page, "ada")).to_have_count(1)
        artefacts(b.page, "b-updated-live")

        # A 422 names the field: its message sits under that input.
        a.page.fill("#user-name", "Someone")
        a.page.fill("#user-username", "a")
        a.page.fill("#user-email", "someone@example.com")
        a.page.click("#user-submit")
        error = a.page.locator("#user-username-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("3 to 32")
        expect(a.page.locator("#user-username")).to_have_attribute("aria-invalid", "true")
        assert "user-username-error" in a.page.get_attribute("#user-username", "aria-describedby").split()
        expect(a.page.locator("#user-name-error")).to_be_hidden()
        expect(a.page.locator("#form-status")).to_contain_text("422")
        artefacts(a.page, "a-validation-error")

        # A conflict (409) is placed under the field it names.
        a.page.fill("#user-username", "ada")
        a.page.click("#user-submit")
        expect(a.page.locator("#user-username-error")).to_be_visible()
        expect(a.page.locator("#form-status")).to_contain_text("409")
        a.page.fill("#user-name", "Grace Hopper")
        a.page.fill("#user-username", "grace")
        a.page.fill("#user-email", "grace@example.com")
        a.page.click("#user-submit")
        expect(a.page.locator("#user-username-error")).to_be_hidden()
        expect(row(b.page, "grace")).to_have_count(1)

        # The search (debounced) filters; clearing it brings every user back.
        b.page.fill("#search", "gra")
        expect(b.page.locator("#users-body tr")).to_have_count(1)
        expect(row(b.page, "grace")).to_have_count(1)
        b.page.fill("#search", "")
        expect(b.page.locator("#users-body tr")).to_have_count(2)

        # Delete: an inline confirm, by keyboard; both pages drop the row.
        row(a.page, "ada").locator('[data-action="delete"]').focus()
        a.page.keyboard.press("Enter")
        really = row(a.page, "ada").locator('[data-action="really-delete"]')
        expect(really).to_be_focused()
        a.page.keyboard.press("Escape")
        expect(row(a.page, "ada").locator('[data-action="delete"]')).to_be_focused()
        a.page.keyboard.press("Enter")
        expect(really).to_be_focused()
        a.page.keyboard.press("Enter")
        expect(row(a.page, "ada")).to_have_count(0)
        expect(row(b.page, "ada")).to_have_count(0)
        expect(row(b.page, "grace")).to_have_count(1)

        assert b.page.evaluate("window.__notReloaded === true"), "page B reloaded"
        expect(b.page.locator("#live-text")).to_have_text("live")
        artefacts(a.page, "a-final")
        artefacts(b.page, "b-final")

        # A read-only token lists but may not write: the 403 is explained.
        ctx_ro = chromium.new_context()
        try:
            ro = open_console(ctx_ro, server.url, "read-only page", token=READ_ONLY)
            expect(row(ro.page, "grace")).to_have_count(1)
            ro.page.fill("#user-name", "Nobody")
            ro.page.fill("#user-username", "nobody")
            ro.page.fill("#user-email", "nobody@example.com")
            ro.page.click("#user-submit")
            expect(ro.page.locator("#form-status")).to_contain_text("read")
            expect(ro.page.locator("#form-status")).to_contain_text("403")
            # Forget the token: gone from storage, feed closed, list cleared.
            ro.page.click("#token-forget")
            expect(ro.page.locator("#live-text")).to_have_text("offline")
            expect(ro.page.locator("#users-body tr")).to_have_count(0)
            assert ro.page.evaluate("sessionStorage.length") == 0
            assert_none(ro.problems())
        finally:
            ctx_ro.close()
    finally:
        found = [p for w in pages for p in w.problems()]
        for w in pages:
            try:
                artefacts(w.page, w.name.replace(" ", "-") + "-last")
            except Exception:  # noqa: BLE001, S110 - a screenshot is a nicety here
                pass
        ctx_a.close()
        ctx_b.close()
    assert_none(found, "the browser reported")


def test_phone_width_and_status_page(server, chromium, artefacts):
    from playwright.sync_api import expect

    context = chromium.new_context(viewport={"width": 320, "height": 700}, device_scale_factor=2,
                                   is_mobile=True, has_touch=True)
    try:
        phone = open_console(context, server.url, "phone")
        harness.http("POST", server.url + "/users", {"name": "Phone Person", "username": "phone.person",
                                                      "email": "phone@example.com"},
                     headers={"Authorization": f"Bearer {TOKEN}"})
        expect(row(phone.page, "phone.person")).to_have_count(1)
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, f"the console is {width}px wide at a 320px viewport (it scrolls sideways)"
        artefacts(phone.page, "phone-320")

        status = Watched(context, "status page")
        status.page.goto(server.url + "/")
        expect(status.page.locator("main h1")).to_be_visible()
        # console.css applies: the <dl> is a grid (a single column on a phone).
        assert status.page.evaluate("getComputedStyle(document.querySelector('dl')).display") == "grid"
        artefacts(status.page, "status-page-320")
        assert_none(phone.problems() + status.problems(), "the browser reported")
    finally:
        context.close()


def test_feed_close_codes(server, chromium):
    """The close codes the server sends rarely, forced on the page's side of the real feed
    (Playwright's WebSocket route, forwarding to the server): 1013 resumes after the last
    seq, 1008 "re-list" lists again and follows without since, 1008 for the token stops."""
    from playwright.sync_api import expect

    connections: list[dict] = []

    def route(ws) -> None:
        upstream = ws.connect_to_server()
        entry = {"url": ws.url, "hello": None, "ws": ws}
        connections.append(entry)

        def from_page(message) -> None:
            if entry["hello"] is None:
                entry["hello"] = json.loads(message)
            upstream.send(message)

        ws.on_message(from_page)  # server -> page is still forwarded by Playwright

    context = chromium.new_context()
    try:
        context.route_web_socket(re.compile(r"/users/watch"), route)
        watched = open_console(context, server.url, "close codes")
        page = watched.page
        assert connections and "since" not in connections[0]["hello"], connections
        assert connections[0]["hello"]["token"] == TOKEN
        username = "close." + secrets.token_hex(3)
        harness.http("POST", server.url + "/users", {"name": "Close Codes", "username": username,
                                                      "email": f"{username}@example.com"},
                     headers={"Authorization": f"Bearer {TOKEN}"})
        expect(row(page, username)).to_have_count(1)

        # 1013: reconnect after a backoff and resume after the last seq received.
        before = len(connections)
        connections[-1]["ws"].close(code=1013, reason="fell too far behind; reconnect and resume")
        expect(page.locator("#live-text")).to_have_text(re.compile("reconnecting"))
        expect(page.locator("#live-text")).to_have_text("live")
        resumed = connections[before]
        assert isinstance(resumed["hello"].get("since"), int) and resumed["hello"]["since"] >= 1, resumed
        assert f"since={resumed['hello']['since']}" in resumed["url"], resumed

        # 1008 "re-list": the list is fetched again and the feed followed without since.
        before = len(connections)
        with page.expect_request(lambda r: r.method == "GET" and "/users?" in r.url):
            connections[-1]["ws"].close(code=1008, reason="events no longer kept: re-list")
        expect(page.locator("#live-text")).to_have_text("live")
        assert "since" not in connections[before]["hello"], connections[before]
        expect(row(page, username)).to_have_count(1)

        # 1008 for the token: offline, said next to the token field, no reconnect.
        before = len(connections)
        connections[-1]["ws"].close(code=1008, reason="invalid token")
        expect(page.locator("#live-text")).to_contain_text("offline")
        expect(page.locator("#token-error")).to_contain_text("refused")
        page.wait_for_timeout(2500)  # longer than the first backoff step
        assert len(connections) == before, "the console reconnected after the token was refused"
        assert_none(watched.problems(), "the browser reported")
    finally:
        context.close()


def test_reconnects_and_resumes(userapi_bin, chromium, artefacts, tmp_path):
    """The server stops (1001 going away) and comes back on the same port: the console shows
    "reconnecting…", then "live", and a change made while it was away arrives."""
    from playwright.sync_api import expect

    port = harness.free_port()
    url = f"http://127.0.0.1:{port}"
    env = server_env(f"sqlite:{tmp_path}/resume.sqlite")
    log = tmp_path / "resume.log"

    def start() -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(userapi_bin), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                    cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        harness.wait_for("userapi ready", lambda: harness.http("GET", url + "/readyz", timeout=2)[0] == 200,
                         process=proc, log=log)
        return proc

    def stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    auth = {"Authorization": f"Bearer {TOKEN}"}
    proc = start()
    context = chromium.new_context()
    try:
        watched = open_console(context, url, "resuming page")
        page = watched.page
        page.evaluate("window.__notReloaded = true")
        harness.http("POST", url + "/users", {"name": "Before", "username": "before", "email": "before@example.com"},
                     headers=auth)
        expect(row(page, "before")).to_have_count(1)

        stop(proc)
        expect(page.locator("#live-text")).to_have_text(re.compile("reconnecting"))
        artefacts(page, "resume-reconnecting")
        proc = start()
        # Changed before the console is back: the resumed feed must bring it.
        harness.http("POST", url + "/users", {"name": "While Away", "username": "away", "email": "away@example.com"},
                     headers=auth)
        expect(page.locator("#live-text")).to_have_text("live")
        expect(row(page, "away")).to_have_count(1)
        expect(row(page, "before")).to_have_count(1)
        assert page.evaluate("window.__notReloaded === true"), "the page reloaded"
        artefacts(page, "resume-live")
        # Errors the browser logs for the refused connections while the server was down are expected.
        problems = [p for p in watched.problems() if "WebSocket connection" not in p]
        assert_none(problems, "the browser reported")
    finally:
        context.close()
        stop(proc)
