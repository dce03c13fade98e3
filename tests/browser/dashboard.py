#!/usr/bin/env python3
"""Checks the centile-api dashboard in a real browser: headless Debian
Chromium driven by Playwright (no browser download: --chromium).

Against a live API with data in it, it checks that the page shows within 5 s,
that the numbers on screen are the API's (each endpoint the page called is
fetched again with urllib and compared cell by cell), that every tab renders a
chart without an error banner at 1366x768, that a 401 brings up the key form,
that a problem+json `detail` is shown, and, with --expect-live-model, that an
event published while the Live tab is open shows within 5 s. A screenshot of
every tab goes to --out.

With --live-handshake it prints `live-ready` once the Live tab shows data and
waits for a line on stdin (the caller publishing the event) before the 5 s
clock starts. Exit status 0: every check passed; 1: one failed (the reason,
and a failure screenshot); 2: bad arguments.

  python3 tests/browser/dashboard.py --url http://127.0.0.1:8089/ \\
      --key "$KEY" --out target/test-artifacts/dashboard
"""

import argparse
import json
import os
import select
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

TABS = ["top", "daily", "feature", "perf", "live", "status"]
VIEWPORT = {"width": 1366, "height": 768}
SHOW_WITHIN_MS = 5000


class CheckFailed(Exception):
    pass


def log(message):
    print(message, flush=True)


# ------------------------------------------------------------ the API itself
class Api:
    def __init__(self, key):
        self.key = key

    def get(self, url):
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            raise CheckFailed(f"GET {url}: {e.code} {e.read()[:300]!r}") from e


# ------------------------------------------------------------ numbers on screen
def shown(text):
    """The number a cell shows, as text (its decimals matter), or None for '—'."""
    t = (text or "").strip().replace("$", "").replace(",", "").replace("%", "")
    return None if t in ("", "—") else t


def matches(text, value, scale=1.0):
    """Whether a cell shows `value` (times `scale`) rounded to its decimals."""
    t = shown(text)
    if value is None:
        return t is None
    if t is None:
        return False
    decimals = len(t.split(".")[1]) if "." in t else 0
    return abs(float(t) - value * scale) <= 0.5 * 10**-decimals + 1e-9


def compare_rows(table, api_rows, key, columns, ordered=True):
    """Differences between a table on screen and the API's rows: the same
    keys (in the same order when `ordered`) and, per column, the same value.
    columns: [(cell col, api field, scale)]. None when they agree."""
    screen_keys = [r["key"] for r in table]
    api_keys = [str(r[key]) for r in api_rows]
    if (screen_keys if ordered else sorted(screen_keys)) != (api_keys if ordered else sorted(api_keys)):
        return f"rows {screen_keys} on screen, {api_keys} from the API"
    by_key = {r["key"]: r["cells"] for r in table}
    for row in api_rows:
        cells = by_key[str(row[key])]
        for col, field, scale in columns:
            if not matches(cells.get(col), row[field], scale):
                return f"{row[key]} {col}: {cells.get(col)!r} on screen, {row[field]!r} from the API"
    return None


# ------------------------------------------------------------ the page
class Dashboard:
    def __init__(self, page, args, api):
        self.page = page
        self.args = args
        self.api = api
        self.origin = urllib.parse.urlsplit(args.url)[:2]
        self.requests = []
        self.foreign = []
        self.console_errors = []
        page.on("request", self._on_request)
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(f"uncaught: {e}"))

    def _on_request(self, request):
        url = request.url
        if url.startswith("data:"):
            return
        if urllib.parse.urlsplit(url)[:2] != self.origin:
            self.foreign.append(url)
        self.requests.append(url)

    def last_request(self, path):
        for url in reversed(self.requests):
            if urllib.parse.urlsplit(url).path.endswith(path):
                return url
        raise CheckFailed(f"the page never asked for {path}")

    def panel(self, tab):
        return f"#panel-{tab}"

    def wait_ready(self, tab, timeout_ms=SHOW_WITHIN_MS, state="ready"):
        """Waits until the panel has finished loading into `state`."""
        try:
            self.page.wait_for_selector(
                f'{self.panel(tab)}[data-state="{state}"]:not([aria-busy])', timeout=timeout_ms
            )
        except PlaywrightError as e:
            seen = self.page.eval_on_selector(
                self.panel(tab),
                "p => [p.dataset.state, p.querySelector('.state').textContent, p.querySelector('.error').textContent]",
            )
            raise CheckFailed(f"{tab} not {state} within {timeout_ms} ms (state, text, error: {seen})") from e

    def open_tab(self, tab):
        self.page.click(f'.tabs [data-tab="{tab}"]')
        self.wait_ready(tab)

    def refresh(self, tab, state="ready"):
        self.page.click("#refresh")
        self.wait_ready(tab, state=state)

    def table(self, table_id):
        return self.page.eval_on_selector_all(
            f"#{table_id} tbody tr",
            """rows => rows.map(r => ({key: r.dataset.key,
                 cells: Object.fromEntries([...r.cells].map(c => [c.dataset.col, c.textContent]))}))""",
        )

    def text(self, selector):
        return self.page.inner_text(selector)

    def check_rendered(self, tab):
        """A drawn chart, no error banner, and nothing wider than the screen."""
        p = self.panel(tab)
        if self.page.is_visible(f"{p} .error"):
            raise CheckFailed(f"{tab}: error banner {self.text(p + ' .error')!r}")
        box = self.page.locator(f"{p} canvas").bounding_box()
        if not box or box["width"] < 200 or box["height"] < 150:
            raise CheckFailed(f"{tab}: chart canvas missing or tiny ({box})")
        datasets = self.page.eval_on_selector(
            f"{p} canvas", "c => (window.Chart && Chart.getChart(c)?.data.datasets.length) || 0"
        )
        if not datasets:
            raise CheckFailed(f"{tab}: no Chart.js chart on the canvas")
        width, height, inner_w, inner_h = self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight, innerWidth, innerHeight]"
        )
        if width > inner_w or height > inner_h:
            raise CheckFailed(f"{tab}: page is {width}x{height}, larger than the {inner_w}x{inner_h} screen")

    def settle(self, tab, check, attempts=3):
        """Runs `check` (None or a difference); on a difference reloads the
        view and tries again, as data may move between the two reads."""
        for attempt in range(attempts):
            difference = check()
            if difference is None:
                return
            log(f"  {tab}: {difference} (attempt {attempt + 1}, reloading)")
            if attempt + 1 < attempts:
                time.sleep(1)
                self.refresh(tab)
        raise CheckFailed(f"{tab}: {difference}")

    def shot(self, name):
        path = os.path.join(self.args.out, f"{name}.png")
        self.page.screenshot(path=path)
        log(f"  screenshot {path}")


# ------------------------------------------------------------ the checks
def check_top(d):
    def check():
        url = d.last_request("/v1/usage/top-models")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        if query.get("days") != ["30"]:
            return f"the page asked for {url}, not days=30"
        answer = d.api.get(url)
        if not answer["rows"]:
            raise CheckFailed("top models: the API has no rows; the test needs data")
        return compare_rows(
            d.table("top-table"), answer["rows"], "model_id",
            [("requests", "requests", 1), ("calls", "calls", 1), ("cost", "cost_usd", 1),
             ("reported", "reported_cost_usd", 1), ("computed", "computed_cost_usd", 1),
             ("error_rate", "error_rate", 100), ("input_tokens", "input_tokens", 1),
             ("output_tokens", "output_tokens", 1), ("p50", "p50_response_time", 1),
             ("p95", "p95_response_time", 1), ("p99", "p99_response_time", 1)],
        )

    d.settle("top", check)
    for model in d.args.expect_model:
        if model not in [r["key"] for r in d.table("top-table")]:
            raise CheckFailed(f"top models: {model} is not in the table")


def check_daily(d):
    def check():
        answer = d.api.get(d.last_request("/v1/usage/stats"))
        if answer["group_by"] != "day":
            return f"the last usage request was group_by={answer['group_by']}"
        return compare_rows(d.table("daily-table"), answer["rows"], "date",
                            [("count", "count", 1), ("cost", "cost_usd", 1),
                             ("reported", "reported_cost_usd", 1), ("computed", "computed_cost_usd", 1)],
                            ordered=False)

    d.settle("daily", check)


def check_feature(d):
    def check():
        answer = d.api.get(d.last_request("/v1/usage/stats"))
        if answer["group_by"] != "feature":
            return f"the last usage request was group_by={answer['group_by']}"
        return compare_rows(d.table("feature-table"), answer["rows"], "feature",
                            [("count", "count", 1), ("cost", "cost_usd", 1),
                             ("reported", "reported_cost_usd", 1), ("computed", "computed_cost_usd", 1)])

    d.settle("feature", check)
    for feature in d.args.expect_feature:
        if feature not in [r["key"] for r in d.table("feature-table")]:
            raise CheckFailed(f"by feature: {feature} is not in the table")


def check_perf(d):
    def check():
        answer = d.api.get(d.last_request("/v1/performance/trends"))
        if not answer["rows"]:
            return "the API has no rows for this choice"
        return compare_rows(
            d.table("perf-table"), answer["rows"], "time_bucket",
            [("calls", "call_count", 1), ("success_rate", "success_rate", 100),
             ("p50", "p50_response_time", 1), ("p95", "p95_response_time", 1),
             ("p99", "p99_response_time", 1), ("max", "max_response_time", 1)],
            ordered=False,
        )

    d.settle("perf", check)
    # The model list comes from /v1/models.
    models = [m["id"] for m in d.api.get(d.last_request("/v1/models"))["models"]]
    offered = d.page.eval_on_selector_all("#perf-model option", "os => os.map(o => o.value).filter(Boolean)")
    if sorted(offered) != sorted(models):
        raise CheckFailed(f"performance: models {offered} offered, {models} from the API")
    # One model, per minute, and (if given) one tool: what the API answers
    # for exactly that is on screen.
    model = d.args.perf_model or (models[0] if models else "")
    d.page.select_option("#perf-model", model)
    d.wait_ready("perf")
    d.page.select_option("#perf-granularity", "minute")
    d.wait_ready("perf")
    if d.args.perf_tool:
        d.page.fill("#perf-tool", d.args.perf_tool)
        d.page.press("#perf-tool", "Enter")
        d.wait_ready("perf")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(d.last_request("/v1/performance/trends")).query)
    wanted = {"model_id": [model], "granularity": ["minute"]}
    if d.args.perf_tool:
        wanted["tool"] = [d.args.perf_tool]
    if any(query.get(k) != v for k, v in wanted.items()):
        raise CheckFailed(f"performance: the page asked for {query}, wanted {wanted}")
    d.settle("perf", check)


def check_status(d):
    def check():
        answer = d.api.get(d.last_request("/v1/windows/status"))
        return compare_rows(d.table("status-table"), answer["tiers"], "tier",
                            [("windows", "windows", 1), ("final", "final", 1), ("open", "open", 1)])

    d.settle("status", check)


def live_numbers(d):
    pairs = {r["key"]: shown(r["cells"]["count"]) for r in d.table("live-table")}
    total = shown(d.text("#live-total"))
    return (int(total) if total else 0), pairs


def check_live(d):
    def check():
        answer = d.api.get(d.last_request("/v1/realtime/stream").replace("/realtime/stream", "/realtime"))
        total, pairs = live_numbers(d)
        users = d.text("#live-users")
        api_pairs = {f"{p['model_id']}\0{p['feature']}": str(p["count"]) for p in answer["top_pairs"]}
        if total != answer["total_events"] or pairs != api_pairs or not matches(users, answer["active_users"]):
            return (f"total {total}, users {users} and pairs {pairs} on screen; {answer['total_events']}, "
                    f"{answer['active_users']} and {api_pairs} from the API")
        return None

    # The stream pushes every few seconds and the window slides, so the two
    # reads agree once a push lands after the API read: poll rather than reload.
    deadline = time.monotonic() + 12
    while (difference := check()) is not None:
        if time.monotonic() > deadline:
            raise CheckFailed(f"live: {difference}")
        time.sleep(0.5)
    users = d.text("#live-users")
    if d.args.expect_live_users is not None and not matches(users, d.args.expect_live_users):
        raise CheckFailed(f"live: {users} active users shown, {d.args.expect_live_users} published")


def check_live_event(d):
    """The event the caller publishes shows within 5 s: its model is in the
    top pairs and the total rose."""
    model = d.args.expect_live_model
    before_total, before_pairs = live_numbers(d)
    before = sum(int(c) for k, c in before_pairs.items() if k.split("\0")[0] == model)
    if d.args.live_handshake:
        log("live-ready")
        ready, _, _ = select.select([sys.stdin], [], [], 120)
        if not ready or not sys.stdin.readline():
            raise CheckFailed("live: no word on stdin that the event was published")
    started = time.monotonic()
    while True:
        total, pairs = live_numbers(d)
        count = sum(int(c) for k, c in pairs.items() if k.split("\0")[0] == model)
        if count > before and total > before_total:
            log(f"  live: {model} shown {time.monotonic() - started:.1f} s after publishing "
                f"(total {before_total} -> {total})")
            return
        if time.monotonic() - started > d.args.live_within:
            raise CheckFailed(
                f"live: {model} not shown within {d.args.live_within} s: total {before_total} -> {total}, "
                f"pairs {pairs}; connection {d.text('#live-conn')!r}"
            )
        time.sleep(0.2)


def check_error_display(d):
    """A problem+json answer shows its `detail` (a canned one: the real API
    has no reason to fail here)."""
    detail = "window status: canned failure from the browser test"
    problem = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": detail}
    pattern = "**/v1/windows/status*"
    d.page.route(pattern, lambda route: route.fulfill(
        status=503, content_type="application/problem+json", body=json.dumps(problem)))
    try:
        d.refresh("status", state="error")
        banner = d.text(f"{d.panel('status')} .error")
        if detail not in banner or "503" not in banner:
            raise CheckFailed(f"error display: banner {banner!r} lacks the detail")
        d.shot("error")
    finally:
        d.page.unroute(pattern)
    d.refresh("status")
    if d.page.is_visible(f"{d.panel('status')} .error"):
        raise CheckFailed("error display: the banner stays after a good answer")


def check_key_form(browser, args):
    """Without a key the page asks for one; a wrong key is refused (401) and
    asked for again; the right one shows the data."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(args.url)
        page.wait_for_selector("#auth:not([hidden])", timeout=SHOW_WITHIN_MS)
        page.fill("#key-input", "ck_not_a_key")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#auth:not([hidden])", timeout=SHOW_WITHIN_MS)
        # A selector, not wait_for_function: the page's CSP forbids eval.
        page.wait_for_selector("#auth-reason:has-text('refused')", timeout=SHOW_WITHIN_MS)
        page.screenshot(path=os.path.join(args.out, "key-form.png"))
        page.fill("#key-input", args.key)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector('#panel-top[data-state="ready"]:not([aria-busy])', timeout=SHOW_WITHIN_MS)
        if page.is_visible("#auth"):
            raise CheckFailed("key form: still shown after a good key")
    finally:
        context.close()
    log("ok: the key form comes up on 401 and takes a key")


def run(browser, args):
    api = Api(args.key)
    # A browser that is neither English nor UTC: what is shown must not depend on it.
    context = browser.new_context(viewport=VIEWPORT, locale="de-DE", timezone_id="America/New_York")
    page = context.new_page()
    d = Dashboard(page, args, api)
    try:
        started = time.monotonic()
        page.goto(f"{args.url}#key={urllib.parse.quote(args.key)}")
        d.wait_ready("top")
        log(f"ok: the dashboard shows Top Models {time.monotonic() - started:.2f} s after loading")
        if "key=" in page.url:
            raise CheckFailed(f"the key stays in the address bar: {page.url}")
        if page.evaluate("sessionStorage.getItem('centile.key')") != args.key:
            raise CheckFailed("the key is not in session storage")

        for tab, check in [("top", check_top), ("daily", check_daily), ("feature", check_feature),
                           ("perf", check_perf), ("live", check_live), ("status", check_status)]:
            if tab != "top":
                d.open_tab(tab)
            if check:
                check(d)
            d.check_rendered(tab)
            d.shot(tab)
            log(f"ok: {tab} renders and shows the API's numbers")
            if tab == "live" and args.expect_live_model:
                check_live_event(d)
                d.shot("live-after-event")
                log("ok: the published event shows on Live")

        if d.console_errors:
            raise CheckFailed(f"browser console errors: {d.console_errors}")
        check_error_display(d)
        log("ok: a problem+json detail is shown in the error banner")
        if d.foreign:
            raise CheckFailed(f"requests left the dashboard's origin: {d.foreign}")
        log(f"ok: all {len(d.requests)} requests went to the dashboard's own origin")
    except Exception:
        try:
            page.screenshot(path=os.path.join(args.out, "failure.png"))
        except PlaywrightError:
            pass
        raise
    finally:
        context.close()
    check_key_form(browser, args)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the dashboard, e.g. http://127.0.0.1:8089/")
    parser.add_argument("--key", default=os.environ.get("CENTILE_API_KEY"), help="an API key (or CENTILE_API_KEY)")
    parser.add_argument("--out", required=True, help="directory for the screenshots")
    parser.add_argument("--chromium", default=os.environ.get("CENTILE_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--expect-model", action="append", default=[], help="a model that must be in Top Models")
    parser.add_argument("--expect-feature", action="append", default=[], help="a feature that must be in By Feature")
    parser.add_argument("--perf-model", help="the model to pick on Performance (default: the first listed)")
    parser.add_argument("--perf-tool", help="a tool to type on Performance")
    parser.add_argument("--expect-live-model", help="wait until Live shows an event of this model")
    parser.add_argument("--expect-live-users", type=int, help="the active users Live must show")
    parser.add_argument("--live-within", type=float, default=5.0, help="seconds allowed for that (default 5)")
    parser.add_argument("--live-handshake", action="store_true",
                        help="print live-ready, then wait for a stdin line before starting the clock")
    args = parser.parse_args()
    if not args.key:
        parser.error("--key or CENTILE_API_KEY is needed")
    if not args.url.endswith("/"):
        args.url += "/"
    os.makedirs(args.out, exist_ok=True)
    with sync_playwright() as playwright:
        # Debian's Chromium, not a browser downloaded by Playwright.
        browser = playwright.chromium.launch(executable_path=args.chromium)
        try:
            run(browser, args)
        except CheckFailed as e:
            log(f"FAILED: {e}")
            return 1
        finally:
            browser.close()
    log("dashboard: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
