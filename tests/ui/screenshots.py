"""Screenshots of the chat's first screen for README, in Spanish and English, at desktop and phone width.

    .venv/bin/python -m tests.ui.screenshots [OUT_DIR]     # default docs/screenshots

The real UI (uvicorn) in front of the real API app with Kafka, the relay and the ledger in memory
(tests/ui/live_api.py), so no broker or Spark is needed; headless Debian chromium takes the pictures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from stack.broker import free_port
from tests.ui.live_api import REPO_ROOT, LiveApi, serve
from ui.i18n import Lang

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ACCEPT_LANGUAGE: dict[Lang, str] = {"es": "es-ES,es", "en": "en-US,en"}
VIEWPORTS = {
    "desktop": {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    "phone": {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
}


def shoot(ui_url: str, lang: Lang, viewport: str, path: Path) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(flag)
    options.add_argument(f"--accept-lang={ACCEPT_LANGUAGE[lang]}")
    options.add_experimental_option("prefs", {"intl.accept_languages": ACCEPT_LANGUAGE[lang]})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORTS[viewport])
        driver.get(ui_url)
        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, "#connection_status .chat-status.ok")
                and d.find_elements(By.CSS_SELECTOR, "#intro li")
                and d.execute_script("return document.documentElement.lang") == lang
            )
        )
        driver.execute_script("document.activeElement && document.activeElement.blur()")
        path.write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.quit()


def main(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        api = LiveApi(Path(tmp))
        with serve(api.recorder) as api_url:
            api.url = api_url
            port = free_port()
            ui = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "ui.app:app", "--host", "127.0.0.1", "--port", str(port)],
                cwd=REPO_ROOT,
                env={**os.environ, "CHAT_API_URL": api_url},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                ui_url = f"http://127.0.0.1:{port}"
                while True:
                    try:
                        requests.get(ui_url, timeout=2).close()
                        break
                    except requests.ConnectionError:
                        if ui.poll() is not None:
                            raise SystemExit("the UI did not start") from None
                        time.sleep(0.1)
                written = []
                for viewport in VIEWPORTS:
                    for lang in ACCEPT_LANGUAGE:
                        path = out_dir / f"first-screen-{lang}-{viewport}.png"
                        shoot(ui_url, lang, viewport, path)
                        written.append(path)
                return written
            finally:
                ui.terminate()
                ui.wait(15)
                api.release()


if __name__ == "__main__":
    for written in main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "docs" / "screenshots"):
        print(written)
