"""How fast a user hears about moderation: warning, block (in the real UI) and unblock, through the running stack.

    python -m bench.feedback --api URL --admin-token T [--ui URL] [--users 3]

`measure_notices` (API only): each fresh user posts three profane messages,
one at a time, and long-polls `GET /users/<author>/notices` after each:
`warning_latency_ms` is a profane POST's 202 → its "warning" notice in the
user's long-poll (strikes 1 and 2), `blocked_notice_ms` the third POST's 202 →
the "blocked" notice. Then a moderator unblocks the user:
`unblock_latency_ms` is the unblock's 202 → the "unblocked" notice, and
`unblock_read_ms` that 202 → the user's first `GET /messages` answered 200.

`measure_block_ui` (headless Chromium through the real UI, as
tests/ui/test_browser.py drives it): a fresh user joins in a window and types
two profane messages; once the API counts both strikes, the page is given a
key listener and a MutationObserver, and the third is typed:
`block_ui_latency_ms` is the browser's own clock from the Enter key to the
blocked banner (`#moderation .chat-blocked`) in the page, so no polling from
outside adds to it.

Progress goes to stderr; stdout gets one readable line and the result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.api_load import ApiClient, BenchError, latency_summary, quote_author
from config import settings

PROFANE_TEXTS = ("qué mierda de día", "joder, otra vez tarde", "¡mierda, se ha caído el wifi!")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BLOCKED_BANNER = "#moderation .chat-blocked"
MESSAGE_INPUT = "#chat_user_input [contenteditable='true']"

# Installed in the page before the third message: the browser's own times of the Enter key and of the banner.
WATCH_FOR_BANNER = """
window.__benchSentAt = null; window.__benchBlockedAt = null;
document.addEventListener('keydown', e => { if (e.key === 'Enter' && window.__benchSentAt === null)
  window.__benchSentAt = performance.now(); }, true);
const seen = () => { if (window.__benchBlockedAt === null && document.querySelector(arguments[0]))
  window.__benchBlockedAt = performance.now(); };
new MutationObserver(seen).observe(document.body, {childList: true, subtree: true, characterData: true});
"""


def _wait_notice(client: ApiClient, author: str, cursor: str, kind: str, deadline: float) -> tuple[float, str]:
    """Long-poll the user's notices after `cursor` until one of `kind` comes: (perf_counter() then, new cursor)."""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise BenchError(f"{author}: no {kind!r} notice in time")
        status, body = client.get_json(
            f"/users/{quote_author(author)}/notices", after=cursor, wait=min(25, max(1, round(left))), timeout_s=40
        )
        now = time.perf_counter()
        if status != 200 or not body:
            raise BenchError(f"{author}: GET notices answered {status}: {body}")
        cursor = body["cursor"]
        if any(n["kind"] == kind for n in body["notices"]):
            return now, cursor


def notices_one(api_url: str, admin_token: str, author: str, timeout_s: float = 300) -> dict:
    """One user's run: {"warning_ms": [two], "blocked_ms", "unblock_ms", "unblock_read_ms"}."""
    with ApiClient(api_url, timeout_s=40) as user, ApiClient(api_url, timeout_s=40) as moderator:
        user.sign_in(author)
        status, body = user.get_json(f"/users/{quote_author(author)}/notices")
        if status != 200 or not body:
            raise BenchError(f"{author}: GET notices answered {status}: {body}")
        cursor = body["cursor"]
        samples: dict = {"warning_ms": []}
        for n, text in enumerate(PROFANE_TEXTS, start=1):
            status, _ = user.post_json("/messages", {"author": author, "data": text})
            posted = time.perf_counter()
            if status != 202:
                raise BenchError(f"{author}: profane POST {n} answered {status}")
            kind = "blocked" if n == len(PROFANE_TEXTS) else "warning"
            arrived, cursor = _wait_notice(user, author, cursor, kind, posted + timeout_s)
            ms = round((arrived - posted) * 1000, 1)
            if kind == "warning":
                samples["warning_ms"].append(ms)
            else:
                samples["blocked_ms"] = ms
        moderator.token = admin_token
        status, body = moderator.post_json(f"/users/{quote_author(author)}/unblock", {})
        unblocked = time.perf_counter()
        if status != 202:
            raise BenchError(f"{author}: the unblock answered {status}: {body}")
        arrived, cursor = _wait_notice(user, author, cursor, "unblocked", unblocked + timeout_s)
        samples["unblock_ms"] = round((arrived - unblocked) * 1000, 1)
        while (status := user.get_json("/messages", user=author, limit=1)[0]) == 403:
            if time.perf_counter() - unblocked > timeout_s:
                raise BenchError(f"{author}: still blocked {timeout_s:g}s after the unblock")
            time.sleep(0.01)
        if status != 200:
            raise BenchError(f"{author}: GET /messages answered {status} after the unblock")
        samples["unblock_read_ms"] = round((time.perf_counter() - unblocked) * 1000, 1)
        user.sign_out()
    return samples


def measure_notices(
    api_url: str, admin_token: str, users: int = 3, progress: Callable[[str], None] = lambda _: None
) -> dict:
    """`{"warning_latency_ms", "blocked_notice_ms", "unblock_latency_ms", "unblock_read_ms"}`, each a latency
    summary with its `samples`, over `users` fresh users one after the other (`authors`)."""
    run = secrets.token_hex(3)
    runs = []
    authors = [f"bench-feedback-{run}-{i}" for i in range(users)]
    for author in authors:
        runs.append(notices_one(api_url, admin_token, author))
        progress(f"{author}: {runs[-1]}")

    def figure(samples: list[float]) -> dict:
        return {**latency_summary(samples, quantiles=(50, 99)), "samples": samples}

    return {
        "warning_latency_ms": figure([ms for r in runs for ms in r["warning_ms"]]),
        "blocked_notice_ms": figure([r["blocked_ms"] for r in runs]),
        "unblock_latency_ms": figure([r["unblock_ms"] for r in runs]),
        "unblock_read_ms": figure([r["unblock_read_ms"] for r in runs]),
        "users": users,
        "authors": authors,
    }


def _browser(log: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        raise BenchError(f"{' and '.join(missing)} not found: make browser (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER), log_output=str(log)), options=options)


def _wait(driver, condition: Callable[[], object], what: str, timeout_s: float):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(lambda _: condition())
    except TimeoutException:
        raise BenchError(f"timed out after {timeout_s:g}s waiting for {what}") from None


def block_ui_one(ui_url: str, api_url: str, author: str, log: Path, timeout_s: float = 300) -> float:
    """One user blocked through the UI: ms from the third message's Enter key to the banner, on the page's clock."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = _browser(log)
    try:
        driver.get(ui_url)
        _wait(driver, lambda: driver.find_elements(By.ID, "name"), "the join form", 60)
        driver.find_element(By.ID, "name").send_keys(author)
        driver.find_element(By.ID, "join").click()
        _wait(driver, lambda: f"Chatting as {author}" in driver.find_element(By.ID, "join_area").text, "the join", 60)

        def say(text: str) -> None:
            box = _wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, MESSAGE_INPUT), "the chat input", 60)[0]
            _wait(driver, lambda: box.get_attribute("contenteditable") == "true", "the input to be ready", 60)
            box.click()
            box.send_keys(text)
            _wait(driver, lambda: box.text == text, "the text typed", 60)
            box.send_keys(Keys.ENTER)

        for text in PROFANE_TEXTS[:2]:
            say(text)
        with ApiClient(api_url) as client:
            deadline = time.monotonic() + timeout_s
            while True:
                status, body = client.get_json(f"/users/{quote_author(author)}")
                if status == 200 and body and body["strikes"] >= 2:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{author}: two strikes not counted in {timeout_s:g}s")
                time.sleep(0.2)
        driver.execute_script(WATCH_FOR_BANNER, BLOCKED_BANNER)
        say(PROFANE_TEXTS[2])
        _wait(driver, lambda: driver.execute_script("return window.__benchBlockedAt"), "the blocked banner", timeout_s)
        sent, blocked = driver.execute_script("return [window.__benchSentAt, window.__benchBlockedAt]")
        return round(blocked - sent, 1)
    finally:
        driver.quit()


def measure_block_ui(
    ui_url: str, api_url: str, work: Path, users: int = 3, progress: Callable[[str], None] = lambda _: None
) -> dict:
    """`block_ui_latency_ms`: a latency summary with its `samples`, over `users` fresh users one after the other
    (`authors`)."""
    run = secrets.token_hex(3)
    samples = []
    authors = [f"bench-ui-{run}-{i}" for i in range(users)]
    work.mkdir(parents=True, exist_ok=True)
    for i, author in enumerate(authors):
        samples.append(block_ui_one(ui_url, api_url, author, work / f"chromedriver-{i}.log"))
        progress(f"{author}: blocked banner {samples[-1]} ms after the third message's Enter")
    return {**latency_summary(samples, quantiles=(50, 99)), "samples": samples, "users": users, "authors": authors}


def main(argv: Sequence[str] | None = None) -> int:
    s = settings.load()
    parser = argparse.ArgumentParser(prog="python -m bench.feedback", description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=s.api_url)
    parser.add_argument("--ui", help="the UI's URL: also measure the block in a browser")
    parser.add_argument("--admin-token", default=s.admin_token, help="a moderator's token (default CHAT_ADMIN_TOKEN)")
    parser.add_argument("--users", type=int, default=3)
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = measure_notices(args.api, args.admin_token, args.users, progress=say)
    if args.ui:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench-feedback-") as work:
            result["block_ui_latency_ms"] = measure_block_ui(args.ui, args.api, Path(work), args.users, say)
    print(
        "feedback: "
        + ", ".join(
            f"{k} p50 {v['p50']} p99 {v['p99']}" for k, v in result.items() if isinstance(v, dict) and "p50" in v
        )
    )
    print(json.dumps({"bench": "feedback", **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
