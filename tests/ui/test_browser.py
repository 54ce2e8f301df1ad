"""The chat in a real browser: headless Chromium windows on the real stack's UI, in Spanish and in English.

Selenium drives Debian's chromium through Debian's chromedriver (`make browser`
installs the packages ``chromium`` and ``chromium-driver``). The driver's path
is given to Selenium's ``Service``, so Selenium Manager is never run and
nothing is downloaded. Every wait is on a condition of the page (WebDriverWait),
never a fixed sleep: Shiny renders over a websocket and messages go through
Kafka and the Spark relay before any window shows them.

Accessibility is checked with axe-core, which the project's set-up installs from
npm (``npm ci``: package.json) and the test injects into the page; the test fails on
any serious or critical violation.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from config import contract
from tests.conftest import auth
from ui.i18n import Lang, translate

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
ACCEPT_LANGUAGE: dict[Lang, str] = {"es": "es-ES,es", "en": "en-US,en"}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
"""A phone's viewport (CSS pixels), as Chromium's device emulation takes it."""

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

RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]}).then(
  (result) => done(result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary),
  }))),
  (error) => done([{id: "axe-error", impact: "critical", help: String(error), nodes: []}]),
);
"""

# Each message with its text in view in the chat, and whether its author line is in view too (what is
# drawn at the middle of the author line is the author line, not something over it, nor nothing).
AUTHOR_LINES = """
const box = document.querySelector("#chat .shiny-chat-messages").getBoundingClientRect();
const drawn = (element, x, y) => {
  if (y <= box.top || y >= box.bottom) return false;
  const hit = document.elementFromPoint(x, y);
  return hit !== null && element.contains(hit);
};
const seen = [];
for (const message of document.querySelectorAll("#chat .chat-msg")) {
  const text = message.querySelector(".chat-msg-text"), line = message.querySelector(".chat-msg-header");
  const t = text.getBoundingClientRect(), h = line.getBoundingClientRect();
  if (![t.top + 2, t.top + t.height / 2, t.bottom - 2].some((y) => drawn(text, t.left + 2, y))) continue;
  seen.push([text.innerText, drawn(line, h.left + 2, h.top + h.height / 2)]);
}
return seen;
"""
FOCUS_RING = """
const style = getComputedStyle(arguments[0]);
return document.activeElement === arguments[0] ? [style.outlineStyle, style.outlineWidth] : null;
"""
# Scrolls the chat so that its top edge falls just below the author line of message ``arguments[0]``.
CUT_BELOW_AUTHOR_LINE = """
const scroller = document.querySelector("#chat .shiny-chat-messages");
const line = document.querySelectorAll("#chat .chat-msg")[arguments[0]].querySelector(".chat-msg-header");
line.style.position = "static";  // measure where the line is in the flow, wherever it may stick
scroller.scrollTop += line.getBoundingClientRect().bottom - scroller.getBoundingClientRect().top + 1;
line.style.position = "";
"""


# Scrolls the chat (or the page, if it is the page that scrolls) so that the author line of message
# ``arguments[0]`` sits behind the middle of the input; then tells whether it got there and whether a tap
# on the middle of the input reaches the input.
TAP_INPUT_OVER_AUTHOR_LINE = """
const box = document.querySelector("#chat_user_input [contenteditable='true']");
const line = document.querySelectorAll("#chat .chat-msg")[arguments[0]].querySelector(".chat-msg-header");
let scroller = line.parentElement;
while (scroller && !(scroller.scrollHeight > scroller.clientHeight
                     && /(auto|scroll)/.test(getComputedStyle(scroller).overflowY))) {
  scroller = scroller.parentElement;
}
scroller = scroller || document.scrollingElement;
const middle = (r) => r.top + r.height / 2;
const by = middle(line.getBoundingClientRect()) - middle(box.getBoundingClientRect());
scroller.scrollTo({top: scroller.scrollTop + by, behavior: "instant"});  // not the theme's smooth scrolling
const r = box.getBoundingClientRect();
const l = line.getBoundingClientRect();
const placed = l.top <= middle(r) && middle(r) <= l.bottom;
const top = document.elementFromPoint(r.left + r.width / 2, middle(r));
const what = top === null ? "nothing" : `${top.tagName.toLowerCase()}.${top.className}`;
return [placed, top !== null && box.contains(top), what];
"""


class ChatPage:
    """One browser window on the chat UI, with what a user does and sees."""

    def __init__(self, driver: WebDriver, url: str) -> None:
        self.driver = driver
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_DIALOGS})
        driver.get(url)
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        self.wait_for(
            lambda: (
                bool(self.driver.find_elements(By.CSS_SELECTOR, "#connection_status .chat-status.ok"))
                and bool(self.driver.find_elements(By.ID, "name"))
                and bool(self.text_of("#intro"))
            ),
            "the page connected to the chat, with the first screen and the join form",
            PAGE_TIMEOUT,
        )

    def strike_out(self) -> None:
        """Three profane messages back to back (one trip through the ledger, not three), then the blocked banner."""
        for text in ["mierda", "sh1t happens", "eres un cabrón"]:
            self.say(text)
        self.wait_for(
            lambda: bool(self.driver.find_elements(By.CSS_SELECTOR, "#moderation .chat-blocked")),
            "the blocked banner",
            MODERATION_TIMEOUT,
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
        """The text shown in the first element ``selector`` finds ("" if none), read in one call: Shiny may
        replace the element between a lookup and a read."""
        return self.script_with(
            "const found = document.querySelector(arguments[0]); return found ? found.innerText.trim() : ''",
            selector,
        )

    def join(self, name: str) -> None:
        self.driver.find_element(By.ID, "name").send_keys(name)
        self.driver.find_element(By.ID, "join").click()
        self.wait_for(
            lambda: self.text_of("#join_area strong") == name,
            f"joining as {name!r}",
            PAGE_TIMEOUT,
        )

    def account(self, kind: str, name: str, password: str) -> None:
        """Fill in the sign-in (``kind`` "signin") or sign-up ("signup") form and send it."""
        fields = {f"{kind}_name": name, f"{kind}_password": password}
        if kind == "signup":
            fields["signup_password2"] = password
        for input_id, value in fields.items():
            field = self.driver.find_element(By.ID, input_id)
            field.clear()
            field.send_keys(value)
        self.driver.find_element(By.ID, kind).click()

    def password_fields_empty(self) -> bool:
        return self.script("return [...document.querySelectorAll('input[type=password]')].every((e) => !e.value)")

    def wait_for_join_error(self, expected: str) -> None:
        self.wait_for(lambda: self.text_of("#join_error_text") == expected, repr(expected), PAGE_TIMEOUT)

    @property
    def lang(self) -> str:
        return str(self.script("return document.documentElement.lang"))

    def switch(self, lang: Lang) -> None:
        """Choose ``lang`` with the switch at the top, as a person would."""
        self.driver.find_element(By.CSS_SELECTOR, f"input[name='lang'][value='{lang}']").click()
        self.wait_for(
            lambda: self.lang == lang and self.text_of("#title h1") == translate(lang, "app.title"),
            f"the page in {lang}",
            PAGE_TIMEOUT,
        )

    def serious_accessibility_problems(self) -> list[dict[str, Any]]:
        """What axe-core finds wrong in the page as it is now, serious or critical."""
        if not AXE.is_file():
            pytest.fail(f"{AXE} not found: run `npm ci` (package.json) to install axe-core")
        if self.script("return typeof window.axe") != "object":
            self.driver.execute_script(AXE.read_text(encoding="utf-8"))
        self.driver.set_script_timeout(60)
        violations = self.driver.execute_async_script(RUN_AXE)
        return [v for v in violations if v["impact"] in ("serious", "critical")]

    def author_lines(self) -> list[tuple[str, bool]]:
        """(text, author line in view) of each message whose text is in view."""
        return [(text, shown) for text, shown in self.script(AUTHOR_LINES)]  # type: ignore[union-attr]

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
        """(author, text) of every chat message displayed, in order (read in one call: the chat may be long)."""
        shown = self.script(
            "return [...document.querySelectorAll('#chat .chat-msg')].map((m) => ["
            "m.querySelector('.chat-msg-author').innerText, m.querySelector('.chat-msg-text').innerText])"
        )
        return [(author, text) for author, text in shown]

    def wait_for_message(self, author: str, text: str) -> None:
        self.wait_for(lambda: (author, text) in self.messages(), f"{author}'s {text!r}", MESSAGE_TIMEOUT)

    def notifications(self) -> list[str]:
        return self.script("return [...document.querySelectorAll('.shiny-notification')].map((e) => e.innerText)")

    def script(self, source: str) -> Any:
        return self.driver.execute_script(source)

    def script_with(self, source: str, *args: object) -> Any:
        return self.driver.execute_script(source, *args)


class OpenWindow(Protocol):
    def __call__(
        self, url: str, *, lang: Lang = "en", size: tuple[int, int] = (1280, 900), phone: bool = False
    ) -> ChatPage: ...


@pytest.fixture
def open_window(tmp_path: Path) -> Iterator[OpenWindow]:
    """Opens browser windows on a URL (each a browser of its own: one user each) whose person prefers
    ``lang``, at ``size`` or as a phone; closes them all at the end."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: run `make browser` (apt-get install chromium chromium-driver)")
    drivers: list[WebDriver] = []

    def open_window(
        url: str, *, lang: Lang = "en", size: tuple[int, int] = (1280, 900), phone: bool = False
    ) -> ChatPage:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            f"--window-size={size[0]},{size[1]}",
            f"--lang={ACCEPT_LANGUAGE[lang].split(',')[0]}",
            f"--accept-lang={ACCEPT_LANGUAGE[lang]}",
        ):
            options.add_argument(flag)
        options.add_experimental_option("prefs", {"intl.accept_languages": ACCEPT_LANGUAGE[lang]})
        service = Service(
            executable_path=str(CHROMEDRIVER),
            log_output=str(tmp_path / f"chromedriver-{len(drivers)}.log"),
        )
        driver = webdriver.Chrome(service=service, options=options)
        drivers.append(driver)
        if phone:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
        return ChatPage(driver, url)

    yield open_window
    for driver in drivers:
        driver.quit()


def test_two_users_chat_in_browsers_and_hostile_text_stays_text(chat_stack, open_window: OpenWindow) -> None:
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

    # The joined chat, with messages, is accessible.
    assert alice.serious_accessibility_problems() == []


def test_a_blocked_user_sees_no_chat_until_a_moderator_unblocks_them(chat_stack, open_window: OpenWindow) -> None:
    run = secrets.token_hex(3)
    troll_name, bob_name = f"troll-{run}", f"bob-{run}"
    troll, bob = open_window(chat_stack.ui_url), open_window(chat_stack.ui_url)
    troll.join(troll_name)
    bob.join(bob_name)

    troll.strike_out()
    assert "blocked" in troll.text_of("#moderation .chat-blocked")
    troll.wait_for(lambda: troll.messages() == [], "the chat to be cleared", PAGE_TIMEOUT)
    # The banner is in the page's live region (screen readers read it out), and the page stays accessible.
    assert troll.driver.find_element(By.CSS_SELECTOR, "[aria-live] #moderation .chat-blocked[role='alert']")
    assert troll.serious_accessibility_problems() == []

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


def test_a_moderator_unblocks_from_the_moderator_page(chat_stack, open_window: OpenWindow) -> None:
    """Issue 17: a moderator signs in on the page, sees the blocked user with the notices that blocked them, and
    unblocks them with the page's button (its click goes through the page's script); the chatter's window never
    has the page."""
    run = secrets.token_hex(3)
    troll_name = f"troll-{run}"
    troll, moderator = open_window(chat_stack.ui_url), open_window(chat_stack.ui_url)
    troll.join(troll_name)
    troll.strike_out()
    assert troll.driver.find_elements(By.CSS_SELECTOR, "#mod_signin, #mod_page") == []  # joined: none of it

    moderator.driver.find_element(By.CSS_SELECTOR, ".mod-signin summary").click()
    moderator.driver.find_element(By.ID, "mod_name").send_keys("moderator")
    moderator.driver.find_element(By.ID, "mod_secret").send_keys(chat_stack.admin_token)
    moderator.driver.find_element(By.ID, "mod_signin").click()
    button = f"#mod_page button.mod-unblock[data-author='{troll_name}']"
    moderator.wait_for(
        lambda: bool(moderator.driver.find_elements(By.CSS_SELECTOR, button)), "the troll on the page", PAGE_TIMEOUT
    )
    assert moderator.password_fields_empty()
    entry = moderator.text_of(f"#mod_page li.mod-user:has({button.removeprefix('#mod_page ')})")
    assert (
        f"{contract.STRIKE_LIMIT} strikes" in entry
        and "blocked since" in entry
        and f"strike {contract.STRIKE_LIMIT} of {contract.STRIKE_LIMIT}" in entry
    )
    assert moderator.serious_accessibility_problems() == []

    moderator.driver.find_element(By.CSS_SELECTOR, button).click()
    moderator.wait_for(
        lambda: f"Unblock of {troll_name} sent (202)" in moderator.text_of("#mod_page"), "the 202", PAGE_TIMEOUT
    )
    troll.wait_for(lambda: troll.text_of("#moderation") == "", "the banner to go", MODERATION_TIMEOUT)
    moderator.wait_for(
        lambda: not moderator.driver.find_elements(By.CSS_SELECTOR, button), "the troll to leave the list", PAGE_TIMEOUT
    )
    assert troll.driver.find_elements(By.CSS_SELECTOR, "#mod_page") == []


def test_a_blocked_account_cannot_come_back_under_another_spelling(chat_stack, open_window: OpenWindow) -> None:
    """Issue 19: sign up, chat, be blocked after three strikes, then fail to come back as a variant of the
    name (capitals, a look-alike) by signing up, signing in or joining as a guest."""
    run = secrets.token_hex(3)
    name, password = f"troll{run}", f"a long enough secret {run}"
    lift_holds(chat_stack)  # earlier tests blocked users from this machine's address
    troll = open_window(chat_stack.ui_url)
    troll.account("signup", name, password)
    troll.wait_for(lambda: troll.text_of("#join_area strong") == name, f"signing up as {name!r}", PAGE_TIMEOUT)
    assert troll.driver.find_elements(By.CSS_SELECTOR, "input[type=password]") == []  # the forms are gone
    troll.say(f"hola ({run})")
    troll.wait_for_message(name, f"hola ({run})")
    troll.strike_out()
    try:
        # Another window, another try: every spelling that looks like the blocked name is refused.
        again = open_window(chat_stack.ui_url, lang="es")
        again.account("signup", name.upper(), password)
        again.wait_for_join_error(translate("es", "account.name_taken"))
        again.wait_for(again.password_fields_empty, "the password fields to be emptied", PAGE_TIMEOUT)
        look_alike = name.replace("l", "I")  # two capital I for the two l's
        again.account("signin", look_alike, "not the password at all")
        again.wait_for_join_error(translate("es", "account.bad_credentials"))
        again.wait_for(again.password_fields_empty, "the password fields to be emptied", PAGE_TIMEOUT)
        again.driver.find_element(By.ID, "name").send_keys(look_alike)
        again.driver.find_element(By.ID, "join").click()
        again.wait_for_join_error(translate("es", "guest.name_taken"))
        assert again.text_of("#join_area strong") == ""  # not in the chat under any of them
        assert again.serious_accessibility_problems() == []
    finally:
        # the shared stack goes on: the block and the hold on this address (the UI's) are lifted
        admin = {"Authorization": f"Bearer {chat_stack.admin_token}"}
        unblock = requests.post(f"{chat_stack.api_url}/users/{name}/unblock", headers=admin, timeout=20)
        assert unblock.status_code == 202, unblock.text
        lift_holds(chat_stack)


def lift_holds(chat_stack) -> None:
    """Lift every sign-up hold of the shared stack: its users all come from 127.0.0.1, so a block in an earlier
    test holds every sign-up (README "Address holds")."""
    admin = {"Authorization": f"Bearer {chat_stack.admin_token}"}
    holds = requests.get(f"{chat_stack.api_url}/admin/holds", headers=admin, timeout=20).json()["holds"]
    for hold in holds:
        lifted = requests.delete(f"{chat_stack.api_url}/admin/holds/{hold['address']}", headers=admin, timeout=20)
        assert lifted.status_code in (204, 404), lifted.text


# -- two languages -------------------------------------------------------------------------------


def first_screen_texts(lang: Lang) -> list[str]:
    return [
        translate(lang, "intro.what"),
        translate(lang, "intro.rules_title"),
        translate(lang, "intro.masked"),
        translate(lang, "intro.strike"),
        translate(lang, "intro.limit", limit=contract.STRIKE_LIMIT),
        translate(lang, "intro.unblock"),
    ]


def test_the_first_screen_in_each_language_and_the_switch(chat_stack, open_window: OpenWindow) -> None:
    spanish = open_window(chat_stack.ui_url, lang="es")
    english = open_window(chat_stack.ui_url, lang="en")
    phone = open_window(chat_stack.ui_url, lang="es", phone=True)
    for window, lang in ((spanish, "es"), (english, "en"), (phone, "es")):
        # The browser's language, everywhere: the page's lang, its title, the first screen, the form.
        assert window.lang == lang
        assert window.driver.title == window.text_of("#title h1") == translate(lang, "app.title")
        intro = window.text_of("#intro")
        for sentence in first_screen_texts(lang):
            assert sentence in intro
        label = window.driver.find_element(By.CSS_SELECTOR, "label[for='name']")
        assert label.text == translate(lang, "join.name_label")
        assert window.text_of("#join") == translate(lang, "join.button")
        assert window.text_of("#connection_status") == "● " + translate(lang, "status.connected")
        assert window.serious_accessibility_problems() == []
    # Focus is visible: the name field, then the button reached with the keyboard.
    name, join = english.driver.find_element(By.ID, "name"), english.driver.find_element(By.ID, "join")
    name.click()
    english.wait_for(lambda: english.script_with(FOCUS_RING, name) == ["solid", "3px"], "a ring on #name", 5)
    name.send_keys(Keys.TAB)
    english.wait_for(lambda: english.script_with(FOCUS_RING, join) == ["solid", "3px"], "a ring on #join", 5)
    # A phone shows it without sideways scrolling.
    assert phone.script("return window.innerWidth") == PHONE["width"]
    assert phone.script("return document.documentElement.scrollWidth") <= PHONE["width"]

    # The switch: the page's language and every text follow, what was typed stays; the choice is remembered.
    spanish.driver.find_element(By.ID, "name").send_keys("zoë")
    spanish.switch("en")
    spanish.wait_for(
        lambda: (
            translate("en", "intro.unblock") in spanish.text_of("#intro")
            and spanish.text_of("label[for='name']") == translate("en", "join.name_label")
            and spanish.text_of("#join") == translate("en", "join.button")
        ),
        "the first screen in English",
        PAGE_TIMEOUT,
    )
    assert spanish.driver.title == translate("en", "app.title")
    assert spanish.driver.find_element(By.ID, "name").get_attribute("value") == "zoë"
    assert spanish.driver.get_cookie("chat_lang")["value"] == "en"  # type: ignore[index]
    assert spanish.serious_accessibility_problems() == []
    spanish.driver.refresh()
    spanish.wait_until_ready()
    assert spanish.lang == "en" and translate("en", "intro.what") in spanish.text_of("#intro")
    spanish.switch("es")
    assert translate("es", "intro.what") in spanish.text_of("#intro")


def test_a_spanish_reader_is_warned_in_spanish(chat_stack, open_window: OpenWindow) -> None:
    """A real strike through the stack: the warning is worded by the UI, in the reader's language, from the
    notice's kind and numbers (the API's notice text is English)."""
    run = secrets.token_hex(3)
    ana_name, bob_name = f"ana-{run}", f"bob-{run}"
    ana, bob = open_window(chat_stack.ui_url, lang="es"), open_window(chat_stack.ui_url, lang="en")
    ana.join(ana_name)
    bob.join(bob_name)
    assert ana.text_of("#join_area") == translate("es", "join.chatting_as", name=ana_name)

    ana.say(f"qué mierda ({run})")
    for window in (ana, bob):
        window.wait_for_message(ana_name, f"qué ****** ({run})")  # masked for every reader
    ana.wait_for(
        lambda: bool(ana.driver.find_elements(By.CSS_SELECTOR, "#moderation .chat-strikes")),
        "the strike's status line",
        MODERATION_TIMEOUT,
    )
    limit = contract.STRIKE_LIMIT
    status = ana.text_of("#moderation .chat-strikes")
    assert status.startswith(translate("es", "strikes.masked", strikes=1, limit=limit))
    notice = ana.text_of("#moderation .chat-strikes-text")
    assert notice.startswith(f"Aviso: falta 1 de {limit} por «")
    assert notice.endswith(f"Tu mensaje se ha tapado. Con {limit} faltas se te bloquea.")
    # announced: it is in the page's live region
    assert ana.driver.find_element(By.CSS_SELECTOR, "[aria-live='polite'] #moderation .chat-strikes")
    ana.wait_for(lambda: any(notice in n for n in ana.notifications()), "the warning's notification", PAGE_TIMEOUT)
    assert ana.serious_accessibility_problems() == []
    # Only ana was warned.
    assert bob.text_of("#moderation") == "" and bob.notifications() == []

    # She switches to English: the same notice, in English.
    ana.switch("en")
    ana.wait_for(
        lambda: ana.text_of("#moderation .chat-strikes-text").startswith(f"Warning: strike 1 of {limit} for “"),
        "the notice in English",
        PAGE_TIMEOUT,
    )
    assert ana.text_of("#moderation .chat-strikes").startswith(f"⚠ Strike 1 of {limit}")


# -- every window shows every message the same way ---------------------------------------------------


def test_every_message_shows_its_author_and_time_in_every_window(chat_stack, open_window: OpenWindow) -> None:
    """The reported bug: once a few more messages had arrived, the first message in one window showed no
    author line (name and time) while another window still did. It was a window whose chat had scrolled:
    the top message was cut between its author line and its text."""
    run = secrets.token_hex(3)
    windows = {
        "tall": open_window(chat_stack.ui_url, size=(1280, 1100)),
        "short": open_window(chat_stack.ui_url, lang="es", size=(1280, 560)),
        "phone": open_window(chat_stack.ui_url, phone=True),
    }
    names = {key: f"{key}-{run}" for key in windows}
    for key, window in windows.items():
        window.join(names[key])

    # Messages arrive while the windows render others: typed in the windows, and sent by others meanwhile.
    others = [f"carol-{run}", f"dave-{run}"]
    expected: list[tuple[str, str]] = []
    for i in range(4):
        for key, window in windows.items():
            window.say(f"{key} {i} ({run})")
            expected.append((names[key], f"{key} {i} ({run})"))
        for other in others:
            data = f"{other} says {i}"
            headers = auth(chat_stack.api_url, other)
            response = requests.post(f"{chat_stack.api_url}/messages", json={"data": data}, headers=headers, timeout=20)
            assert response.status_code == 202, response.text
            expected.append((other, data))
    for key, window in windows.items():
        window.wait_for(
            lambda w=window: all(m in w.messages() for m in expected),  # type: ignore[misc]
            f"every message in the {key} window",
            MESSAGE_TIMEOUT,
        )

    for key, window in windows.items():
        # Every message has its author line...
        headers = window.driver.find_elements(By.CSS_SELECTOR, "#chat .chat-msg .chat-msg-header")
        assert len(headers) == len(window.messages())
        # ...and in view: as the chat is now, and cut just below each message's author line in turn.
        window.wait_for(lambda w=window: bool(w.author_lines()), f"messages in view in the {key} window", 5)  # type: ignore[misc]
        views = [window.author_lines()]
        shown = window.messages()
        for index in (i for i, message in enumerate(shown[:-1]) if message in expected):
            window.script_with(CUT_BELOW_AUTHOR_LINE, index)
            views.append(window.author_lines())
        hidden = [(text, n) for n, view in enumerate(views) for text, shown in view if not shown]
        assert hidden == [], f"in the {key} window, messages in view without their author line: {hidden}"
        # A tap on the input reaches the input whatever scrolled under it: author lines once covered it.
        taps = [window.script_with(TAP_INPUT_OVER_AUTHOR_LINE, i) for i in range(len(shown))]
        covered = [(i, what) for i, (_, reached, what) in enumerate(taps) if not reached]
        assert covered == [], (
            f"in the {key} window, a tap on the input reached something else (message, what): {covered}"
        )
        if key == "phone":  # its chat is longer than the screen: the lines did pass behind the input
            assert any(placed for placed, _, _ in taps), "no author line could be scrolled behind the phone's input"
        assert window.serious_accessibility_problems() == []
