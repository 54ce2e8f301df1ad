"""The chat in a real browser: headless Chromium windows on the real stack's UI.

Selenium drives Debian's chromium through Debian's chromedriver (`make browser`
installs the packages ``chromium`` and ``chromium-driver``). The driver's path
is given to Selenium's ``Service``, so Selenium Manager is never run and
nothing is downloaded. Every wait is on a condition of the page (WebDriverWait),
never a fixed sleep: Shiny renders over a websocket and messages go through
Kafka and the Spark relay before any window shows them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT = 30.0
"""Seconds for the page and Shiny's websocket to come up, and for a join."""
MESSAGE_TIMEOUT = 60.0
"""Seconds for a message to go API -> Kafka -> Spark relay -> API -> UI -> browser."""
MODERATION_TIMEOUT = 300.0
"""Seconds for a block or an unblock to go through the ledger to the browser (as in test_stack)."""

# Runs before any script of every page: dialogs are recorded instead of shown,
# so that a message that manages to run code is seen, not just blocking.
RECORD_DIALOGS = """
window.__dialogs = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = function (message) { window.__dialogs.push(name + ": " + String(message)); };
}
"""

HOSTILE = ["<img src=x onerror=alert(1)>", "<script>window.__pwned=1</script>"]


class ChatPage:
    """One browser window on the chat UI, with what a user does and sees."""

    def __init__(self, driver: WebDriver, url: str) -> None:
        self.driver = driver
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_DIALOGS})
        driver.get(url)
        self.wait_for(
            lambda: "Connected" in self.text_of("#connection_status") and bool(driver.find_elements(By.ID, "name")),
            "the page connected to the chat, with the join form",
            PAGE_TIMEOUT,
        )

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(lambda _: condition())
        except TimeoutException:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; the window shows "
                f"{self.messages()} (join area {self.text_of('#join_area')!r}, "
                f"status {self.text_of('#connection_status')!r})"
            ) from None

    def text_of(self, selector: str) -> str:
        found = self.driver.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else ""

    def join(self, name: str) -> None:
        self.driver.find_element(By.ID, "name").send_keys(name)
        self.driver.find_element(By.ID, "join").click()
        self.wait_for(
            lambda: self.text_of("#join_area") == f"Chatting as {name}.",
            f"joining as {name!r}",
            PAGE_TIMEOUT,
        )

    def say(self, text: str) -> None:
        """Type ``text`` into the chat's input and press Enter."""
        box = self.driver.find_element(By.CSS_SELECTOR, "#chat_user_input [contenteditable='true']")
        # shinychat locks the input while a message is being sent.
        self.wait_for(
            lambda: box.get_attribute("contenteditable") == "true",
            "the chat input to be ready",
            PAGE_TIMEOUT,
        )
        box.click()
        box.send_keys(text)
        self.wait_for(lambda: box.text == text, f"{text!r} typed in the input", PAGE_TIMEOUT)
        box.send_keys(Keys.ENTER)
        self.wait_for(lambda: box.text == "", f"{text!r} sent", PAGE_TIMEOUT)

    def messages(self) -> list[tuple[str, str]]:
        """(author, text) of every chat message displayed, in order."""
        shown = []
        for message in self.driver.find_elements(By.CSS_SELECTOR, "#chat .chat-msg"):
            author = message.find_element(By.CSS_SELECTOR, ".chat-msg-author").text
            shown.append((author, message.find_element(By.CSS_SELECTOR, ".chat-msg-text").text))
        return shown

    def wait_for_message(self, author: str, text: str) -> None:
        self.wait_for(lambda: (author, text) in self.messages(), f"{author}'s {text!r}", MESSAGE_TIMEOUT)

    def notifications(self) -> list[str]:
        return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, ".shiny-notification")]

    def script(self, source: str) -> object:
        return self.driver.execute_script(source)


@pytest.fixture
def open_window(tmp_path: Path) -> Iterator[Callable[[str], ChatPage]]:
    """Opens browser windows on a URL (each a browser of its own: two users);
    closes them all at the end."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: run `make browser` (apt-get install chromium chromium-driver)")
    drivers: list[WebDriver] = []

    def open_window(url: str) -> ChatPage:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
            options.add_argument(flag)
        service = Service(
            executable_path=str(CHROMEDRIVER),
            log_output=str(tmp_path / f"chromedriver-{len(drivers)}.log"),
        )
        driver = webdriver.Chrome(service=service, options=options)
        drivers.append(driver)
        return ChatPage(driver, url)

    yield open_window
    for driver in drivers:
        driver.quit()


def test_two_users_chat_in_browsers_and_hostile_text_stays_text(
    chat_stack, open_window: Callable[[str], ChatPage]
) -> None:
    run = secrets.token_hex(3)
    alice_name, bob_name = f"alice-{run}", f"bob-{run}"
    alice, bob = open_window(chat_stack.ui_url), open_window(chat_stack.ui_url)
    alice.join(alice_name)
    bob.join(bob_name)

    # Each sees the other's message, and their own.
    alice.say(f"hello bob ({run})")
    for window in (alice, bob):
        window.wait_for_message(alice_name, f"hello bob ({run})")
    bob.say(f"hi alice ({run})")
    for window in (alice, bob):
        window.wait_for_message(bob_name, f"hi alice ({run})")

    # Markup in a message is shown as the text it is, in both windows...
    for text in HOSTILE:
        alice.say(text)
    bob.say(f"done ({run})")  # shown after the hostile ones: anything they ran has run
    for window in (alice, bob):
        for text in HOSTILE:
            window.wait_for_message(alice_name, text)
        window.wait_for_message(bob_name, f"done ({run})")
        shown = [
            element
            for element in window.driver.find_elements(By.CSS_SELECTOR, "#chat .chat-msg-text")
            if element.text in HOSTILE
        ]
        assert sorted(e.text for e in shown) == sorted(HOSTILE)
        assert all(e.is_displayed() for e in shown)

        # ...no element came from it, in the chat (the hidden echo of what was
        # typed included) or anywhere in the page...
        assert window.driver.find_elements(By.CSS_SELECTOR, "#chat img, #chat script") == []
        assert (
            window.script(
                "return [...document.querySelectorAll('img[onerror], img[src=\"x\"]')].length"
                " + [...document.scripts].filter(s => s.text.includes('__pwned')).length"
            )
            == 0
        )

        # ...and nothing ran: no dialog, no global set by the script.
        assert window.script("return window.__dialogs") == []
        assert window.script("return typeof window.__pwned") == "undefined"
        with pytest.raises(NoAlertPresentException):
            window.driver.switch_to.alert.text  # noqa: B018 (reading it is the check)


def test_a_blocked_user_sees_no_chat_until_a_moderator_unblocks_them(
    chat_stack, open_window: Callable[[str], ChatPage]
) -> None:
    run = secrets.token_hex(3)
    troll_name, bob_name = f"troll-{run}", f"bob-{run}"
    troll, bob = open_window(chat_stack.ui_url), open_window(chat_stack.ui_url)
    troll.join(troll_name)
    bob.join(bob_name)

    # Three strikes, back to back (one trip through the ledger, not three).
    for text in ["mierda", "sh1t happens", "eres un cabrón"]:
        troll.say(text)
    troll.wait_for(
        lambda: bool(troll.driver.find_elements(By.CSS_SELECTOR, "#moderation .chat-blocked")),
        "the blocked banner",
        MODERATION_TIMEOUT,
    )
    assert "blocked" in troll.text_of("#moderation .chat-blocked")
    troll.wait_for(lambda: troll.messages() == [], "the chat to be cleared", PAGE_TIMEOUT)

    # The chat goes on without them: bob's message reaches bob's window, not theirs.
    bob.say(f"is the troll gone? ({run})")
    bob.wait_for_message(bob_name, f"is the troll gone? ({run})")
    assert troll.messages() == []

    # A moderator unblocks them: the banner goes, they are told, the chat is back.
    response = requests.post(
        f"{chat_stack.api_url}/users/{troll_name}/unblock",
        headers={"Authorization": f"Bearer {chat_stack.admin_token}"},
        timeout=20,
    )
    assert response.status_code == 202, response.text
    troll.wait_for(lambda: troll.text_of("#moderation") == "", "the banner to go", MODERATION_TIMEOUT)
    troll.wait_for(
        lambda: any("unblocked you" in n for n in troll.notifications()),
        "the unblocked notification",
        PAGE_TIMEOUT,
    )
    troll.wait_for_message(bob_name, f"is the troll gone? ({run})")
    troll.say(f"sorry ({run})")
    for window in (troll, bob):
        window.wait_for_message(troll_name, f"sorry ({run})")
