"""The HTML report as a person sees it: rendered by headless Chromium.

The report of the sample data, with one label cut 4 px right and 3 px down of
its image's box and with tiny demo checkpoints, is opened from disk. The page
must load with no console errors, every image must decode in the browser, and
the verdict and the defect's file name must be on the rendered page. The
screenshot is kept as ``test-artifacts/report.png``.

Without Chromium (Debian's ``chromium`` and ``chromium-driver``; ``.ci/run``
installs them) the test is skipped with that reason, never passed silently.
"""

from __future__ import annotations

import base64
import io as _io
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_report import (
    DEFECT_LABEL,
    DEFECT_NAME,
    copy_fixture,
    inject_misaligned_label,
    sweep_options,
    train_checkpoints,
)

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
SKIP_REASON = "headless Chromium not installed (apt-get install chromium chromium-driver); "
SKIP_REASON += ".ci/run installs it"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None
    )
    if browser is None or driver is None:
        pytest.skip(SKIP_REASON + f" (chromium: {browser}, chromedriver: {driver})")
    return browser, driver


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datatool.checks import CheckOptions
    from datatool.evaluate.reporting import build_report
    from datatool.report import write_report

    base = tmp_path_factory.mktemp("browser")
    tree = inject_misaligned_label(copy_fixture(base / "training_validation_data"))
    checkpoints = train_checkpoints(base / "checkpoints")
    report, figures = build_report(
        tree,
        CheckOptions(workers=1),
        samples=4,
        checkpoints=checkpoints,
        sweep_options=sweep_options(),
    )
    return write_report(report, figures, base / "report.html")[0]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    browser_path, driver_path = _chromium()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_report_renders_in_chromium(browser, report_page: Path) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(report_page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)"
        )
    )
    # Every <img> decoded by the browser, and by PIL from the page source.
    sizes = browser.execute_script(
        "return Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])"
    )
    html = report_page.read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/(?:png|jpeg);base64,([^"]+)"', html)
    assert len(sizes) == len(embedded) > 0
    assert all(w > 0 and h > 0 for w, h in sizes), sizes
    for data in embedded:
        with Image.open(_io.BytesIO(base64.b64decode(data))) as img:
            img.load()
    # No console errors (a broken image or a blocked resource logs one).
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    # What the person reads: the verdict first, the defect's file, it pictured first.
    verdict = browser.find_element(By.ID, "verdict").text
    assert verdict.startswith("FAIL") and "1 error(s)" in verdict
    body = browser.find_element(By.TAG_NAME, "body").text
    assert DEFECT_LABEL in body
    first_pair = browser.find_element(By.CSS_SELECTOR, ".pair")
    assert first_pair.text.startswith(DEFECT_NAME)
    assert "offset (dx, dy) = (+4, +3) px" in first_pair.text
    assert len(first_pair.find_elements(By.TAG_NAME, "img")) == 2
    assert browser.find_element(By.ID, "models").is_displayed()
    # A section per sample, each field of view pictured (decoded, at most 256 px).
    cards = browser.find_elements(By.CSS_SELECTOR, ".sample")
    assert [c.get_attribute("id") for c in cards] == [
        "sample-training-0101",
        "sample-training-0102",
        "sample-validation-0201",
    ]
    first_sample = cards[0]
    assert first_sample.is_displayed() and "complete grains" in first_sample.text
    assert "misaligned" in first_sample.text and "boxes from crops.json" in first_sample.text
    thumbnails = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('img'))"
        ".map(i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])",
        first_sample,
    )
    assert len(thumbnails) == 2, thumbnails
    assert all(0 < max(w, h) <= 256 and shown > 0 for w, h, shown in thumbnails), thumbnails
    # The whole page as a person would scroll through it, kept as a test artifact.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 16000))
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "report.png"))
    with Image.open(ARTIFACTS / "report.png") as shot:
        assert shot.width >= 1000 and shot.height > 1600
