"""The web page at ``GET /``, in a real headless Chromium on a real ``python serve.py``: a photo gives
its people and the service's drawing, a non-image gives the service's ``errorMsg`` on the page, the
keyboard alone works, a phone-width window does not overflow, a video is sent frame by frame with
progress and can be cancelled. Screenshots are saved in each test's tmp dir (full page, PNG)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from .conftest import Client, ServeProcess, b64

INFER = "/human-keypoint-detection"
RESULT_TIMEOUT = 180.0  # seconds: a loaded 2-core machine runs the models slowly


class Page:
    """The page in the browser, read and operated as a user would (ids from static/index.html)."""

    def __init__(self, driver: Any, server: ServeProcess) -> None:
        self.driver = driver
        self.url = f"http://127.0.0.1:{server.port}/"

    def open(self) -> Page:
        self.driver.get(self.url)
        self.wait(lambda: self.text("service") != "Asking the service what it loaded…", 30, "GET info")
        return self

    def element(self, id_: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, id_)

    def text(self, id_: str) -> str:
        return str(self.driver.execute_script("return document.getElementById(arguments[0]).textContent", id_))

    def shown(self, id_: str) -> bool:
        return bool(
            self.driver.execute_script("return !document.getElementById(arguments[0]).closest('[hidden]')", id_)
        )

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout:g} s waiting for {what}; status {self.text('status')!r}, "
            f"error {self.text('error')!r}, progress {self.text('progress-text')!r}"
        )

    def upload(self, path: Path) -> None:
        self.element("file").send_keys(str(path))

    def wait_done(self, timeout: float = RESULT_TIMEOUT) -> str:
        """The announcement once the run has ended (result, error or cancellation)."""
        self.wait(
            lambda: not self.shown("cancel") and not self.text("status").startswith("Working"), timeout, "the end"
        )
        return self.text("status")

    def persons(self) -> list[str]:
        return list(
            self.driver.execute_script("return [...document.querySelectorAll('#persons li')].map(e => e.textContent)")
        )

    def downloaded_json(self) -> Any:
        """What the 'Download the JSON' link holds (read from its blob URL in the page)."""
        text = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(document.getElementById('download').href).then(r => r.text()).then(done, e => done(String(e)));"
        )
        return json.loads(text)

    def overflow(self) -> int:
        """Pixels the page is wider than the window (0: no horizontal scrolling)."""
        return int(
            self.driver.execute_script(
                "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth"
            )
        )

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the window's height) through the DevTools protocol: PNG, or JPEG
        for a ``.jpg`` path."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        kind = {"format": "jpeg", "quality": 70} if path.suffix == ".jpg" else {"format": "png"}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {**kind, "clip": clip, "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def severe_logs(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture()
def page(browser: Any, server: ServeProcess) -> Page:
    browser.get("about:blank")
    browser.get_log("browser")  # drop what earlier tests left
    return Page(browser, server)


@pytest.fixture(scope="module")
def demo_7(photos: list[Path]) -> Path:
    return next(p for p in photos if p.name == "demo_7.jpg")


def test_page_is_served_by_the_service_itself(client: Client) -> None:
    status, headers, html = client.get("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in headers["content-security-policy"]
    assert 'src="static/page.js"' in html and 'href="static/page.css"' in html
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    for name, kind in (("page.js", "text/javascript"), ("page.css", "text/css")):
        status, headers, body = client.get(f"/static/{name}")
        assert status == 200 and headers["content-type"].startswith(kind) and len(body) > 1000
        assert "https://" not in body
    status, _, _ = client.get("/static/../core.py")
    assert status == 404


def test_photo_lists_four_people_with_the_drawing(page: Page, client: Client, demo_7: Path, tmp_path: Path) -> None:
    page.open()
    assert not page.shown("model") and "PP-TinyPose_128x96" in page.text("model-only")  # one model: shown, no choice
    page.upload(demo_7)
    status = page.wait_done()
    page.screenshot(tmp_path / "photo.png")
    page.screenshot(tmp_path / "photo.jpg")
    assert status.startswith("demo_7.jpg: 4 people found"), status
    assert "PP-TinyPose_128x96, flip off, detection threshold 0.50" in status
    assert not page.shown("error")
    persons = page.persons()
    assert len(persons) == 4 and all(text.startswith(f"Person {i + 1}: detection 0.") for i, text in enumerate(persons))
    drawing = page.element("drawing")
    assert drawing.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert page.driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", drawing) == 450
    assert drawing.size["width"] > 400 and drawing.is_displayed()
    assert len(page.driver.execute_script("return document.querySelectorAll('#labels text')")) == 4
    # the page shows and offers exactly what the API answers to the same request
    _, _, answer = client.post(INFER, {"image": b64(demo_7.read_bytes()), "detThreshold": 0.5, "flip": False})
    saved = page.downloaded_json()
    assert saved["file"] == "demo_7.jpg"
    assert saved["request"] == {"detThreshold": 0.5, "flip": False, "model": "PP-TinyPose_128x96"}
    assert saved["persons"] == answer["result"]["persons"]
    first = answer["result"]["persons"][0]
    assert f"detection {first['detScore']:.2f}, keypoints {first['kptScore']:.2f}" in persons[0]
    assert page.element("download").get_attribute("download") == "demo_7.tinypose.json"
    origins = page.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith((page.url, "data:", "blob:")) for name in origins), origins
    assert page.severe_logs() == []


def test_not_an_image_shows_the_error_message(page: Page, tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("these are notes, not a photo\n")
    page.open()
    page.upload(fake)
    status = page.wait_done()
    page.screenshot(tmp_path / "error.png")
    assert status == "notes.jpg: no result."
    assert page.shown("error")
    message = page.text("error")
    assert message == (
        "notes.jpg: The service answered 400: image is not an image file (29 bytes in no format this service reads)"
    )
    assert not page.shown("result")
    # dropped on the drop zone instead of picked: the same message
    page.driver.execute_script(
        "const data = new DataTransfer();"
        "data.items.add(new File(['not a picture'], 'dropped.png', {type: 'image/png'}));"
        "document.getElementById('drop').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));"
    )
    page.wait(lambda: page.text("error").startswith("dropped.png:"), RESULT_TIMEOUT, "the error of the dropped file")
    assert "The service answered 400: image is not an image file (13 bytes" in page.text("error")
    # a photo whose request would be over the service's max_body_mb (3 here): refused before sending
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1200, 3), dtype=np.uint8)
    big = tmp_path / "noise.png"
    cv2.imwrite(str(big), noise)
    page.upload(big)
    page.wait(lambda: page.text("error").startswith("noise.png:"), RESULT_TIMEOUT, "the error of the large file")
    assert re.fullmatch(
        r"noise\.png: the photo would be 4\.\d MB in base64, over this service's limit of 3\.0 MB per request; "
        r"nothing was sent\.",
        page.text("error"),
    ), page.text("error")
    # a "video" the browser cannot decode: its own message, not the service's
    clip = tmp_path / "clip.mp4"
    clip.write_text("not a video either\n")
    page.upload(clip)
    page.wait(lambda: page.text("error").startswith("clip.mp4:"), RESULT_TIMEOUT, "the error of the broken video")
    assert page.text("error").startswith("clip.mp4: the browser cannot decode this video"), page.text("error")
    assert page.text("status") == "clip.mp4: no result."


def test_keyboard_alone(page: Page, demo_7: Path, tmp_path: Path) -> None:
    """Tab reaches the file picker first; the result is announced in the polite live region; the options
    and 'Run again' work from the keyboard, and the new result is announced too."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def press(*keys: str) -> str:
        ActionChains(page.driver).send_keys(*keys).perform()
        return str(page.driver.execute_script("return document.activeElement.id"))

    page.open()
    assert press(Keys.TAB) == "file"  # the first stop
    live = page.element("status")
    assert live.get_attribute("aria-live") == "polite" and live.get_attribute("role") == "status"
    page.driver.switch_to.active_element.send_keys(str(demo_7))  # what choosing in the picker does
    assert page.wait_done().startswith("demo_7.jpg: 4 people found")
    assert page.driver.execute_script("return document.activeElement.id") == "file"  # focus not moved
    assert press(Keys.TAB) == "flip"
    press(Keys.SPACE)
    assert page.element("flip").is_selected()
    assert press(Keys.TAB) == "threshold"
    press(Keys.ARROW_LEFT)
    assert page.text("threshold-value") == "0.45"
    assert press(Keys.TAB) == "fps"
    assert press(Keys.TAB) == "run"
    press(Keys.ENTER)
    status = page.wait_done()
    page.screenshot(tmp_path / "keyboard.png")
    assert status.startswith("demo_7.jpg: 4 people found") and "flip on, detection threshold 0.45" in status
    assert page.shown("result") and len(page.persons()) == 4


def test_phone_width(page: Page, demo_7: Path, tmp_path: Path) -> None:
    """A 390x844 phone screen (mobile viewport): no horizontal overflow, empty, with a result or an error."""
    driver = page.driver
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    )
    try:
        page.open()
        assert driver.execute_script("return window.innerWidth") == 390
        assert page.overflow() <= 0
        page.upload(demo_7)
        assert page.wait_done().startswith("demo_7.jpg: 4 people found")
        page.screenshot(tmp_path / "phone.png")
        assert page.overflow() <= 0
        right = driver.execute_script("return document.getElementById('drawing').getBoundingClientRect().right")
        assert 300 < right <= 390
        fake = tmp_path / "a-file-with-a-rather-long-name-that-must-wrap-on-a-phone.jpg"
        fake.write_bytes(b"\x00" * 64)
        page.upload(fake)
        page.wait_done()
        page.screenshot(tmp_path / "phone-error.png")
        assert "image is not an image file" in page.text("error")
        assert page.overflow() <= 0
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_video_frames_with_progress_and_cancel(page: Page, data_dir: Path, tmp_path: Path) -> None:
    """A clip sampled at 1 frame/s: one request per frame with 'Frame k of n' progress, every frame's
    people browsable, all in the JSON; a longer run at 5 frames/s is cancelled midway and stops there."""
    from selenium.webdriver.support.ui import Select

    page.open()
    Select(page.element("fps")).select_by_value("1")
    page.upload(data_dir / "video" / "multi_person_demo.mp4")  # 3.33 s, 1080x1920
    seen = set()
    deadline = time.monotonic() + RESULT_TIMEOUT
    while page.shown("cancel") and time.monotonic() < deadline:
        seen.add(page.text("progress-text"))
        time.sleep(0.05)
    status = page.wait_done()
    page.screenshot(tmp_path / "video.png")
    assert status.startswith("multi_person_demo.mp4: 4 frames analysed in"), status
    assert {"Frame 1 of 4 (0.00 s)…", "Frame 4 of 4 (3.00 s)…"} <= seen, seen
    assert not page.shown("progress-box") and not page.shown("error")
    saved = page.downloaded_json()
    assert [frame["time"] for frame in saved["frames"]] == [0, 1, 2, 3]
    assert all(len(frame["persons"]) == 2 for frame in saved["frames"])  # the clip's two adults, in every frame
    assert page.element("frame").get_attribute("max") == "3"
    page.element("frame").click()  # the slider's middle: frame 2 or 3
    assert page.text("persons-title") in ("People in frame 2", "People in frame 3") and len(page.persons()) == 2

    Select(page.element("fps")).select_by_value("5")
    page.upload(data_dir / "video" / "test_video_structuralize.mp4")  # 10 s: 50 frames at 5/s
    page.wait(lambda: page.shown("frame-nav") and int(page.element("frame").get_attribute("max")) >= 1, 120, "2 frames")
    page.screenshot(tmp_path / "video-progress.png")
    page.element("cancel").click()
    status = page.wait_done(30)
    done = len(page.downloaded_json()["frames"])
    assert status == f"Cancelled: {done} frames of test_video_structuralize.mp4 analysed before that (shown below).", (
        status
    )
    assert 2 <= done < 50
    assert not page.shown("progress-box") and not page.shown("cancel") and page.shown("result")
    time.sleep(2.0)
    assert len(page.downloaded_json()["frames"]) == done  # nothing sent after the cancel
    page.screenshot(tmp_path / "video-cancelled.png")


@pytest.mark.slow
def test_model_choice_when_both_are_loaded(
    browser: Any, two_model_server: ServeProcess, demo_7: Path, tmp_path: Path
) -> None:
    """With both sizes loaded the page offers them (read from GET /info); the one picked with the
    keyboard answers, exactly as the API answers a request for that model."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    page = Page(browser, two_model_server).open()
    assert page.shown("model") and page.text("model-only") == ""
    options = browser.execute_script("return [...document.getElementById('model').options].map(o => o.value)")
    assert options == ["PP-TinyPose_128x96", "PP-TinyPose_256x192"]
    ActionChains(browser).send_keys(Keys.TAB, Keys.TAB, Keys.ARROW_DOWN).perform()
    assert page.element("model").get_attribute("value") == "PP-TinyPose_256x192"
    page.upload(demo_7)
    status = page.wait_done()
    page.screenshot(tmp_path / "two-models.png")
    assert status.startswith("demo_7.jpg: 4 people found") and "(PP-TinyPose_256x192, flip off" in status
    saved = page.downloaded_json()
    assert saved["request"]["model"] == "PP-TinyPose_256x192"
    _, _, answer = two_model_server.client.post(
        INFER, {"image": b64(demo_7.read_bytes()), "model": "PP-TinyPose_256x192", "visualize": False}
    )
    assert saved["persons"] == answer["result"]["persons"]
