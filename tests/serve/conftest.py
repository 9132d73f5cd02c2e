"""A real ``python serve.py`` on a free loopback port, a local image host for URL inputs, an HTTP client,
and a real headless Chromium (Debian's ``chromium`` + ``chromium-driver`` through Selenium) for the page.

Nothing is mocked: the server is the command users run (LitServe, its model process, uvicorn), with
the real weights from ../shared and small limits so that every limit can be reached cheaply. The
image host is a threaded ``http.server`` on 127.0.0.1 (allowed through ``url_allow``); 127.0.0.2 is
loopback too but not allowed, so URLs to it must be refused.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER_OPTIONS = (
    "host=127.0.0.1",
    "threads=1",
    "max_batch_size=8",
    "batch_wait_ms=30",
    "max_queue=16",
    "max_body_mb=3",
    "max_megapixels=4",
    "url_timeout=3",
    "request_timeout=300",
    "max_download_mb=1",
    "url_allow=[127.0.0.1]",
    "shutdown_timeout=20",
    "log_level=warning",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Client:
    """Minimal HTTP/1.1 client (one connection per request) returning ``(status, headers, json_or_text)``."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port, self.timeout = port, timeout

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            found = {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        try:
            return response.status, found, json.loads(raw)
        except ValueError:
            return response.status, found, raw.decode("utf-8", "replace")

    def post(self, path: str, payload: Any) -> tuple[int, dict[str, str], Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def get(self, path: str) -> tuple[int, dict[str, str], Any]:
        return self.request("GET", path)


class ServeProcess:
    """``python serve.py`` in a subprocess; :meth:`stop` sends SIGTERM and waits for the exit code."""

    def __init__(self, weights: Path, options: Sequence[str], log: Path, startup_timeout: float = 240.0) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            str(REPO / "serve.py"),
            f"port={self.port}",
            f"model_dir={weights / 'tinypose_128x96' / 'model.xml'}",
            f"detector_weights={weights / 'picodet_s_320_lcnet_pedestrian' / 'model.xml'}",
            *options,
        ]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
        self.log_path = log
        self._log = log.open("w")
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.client = Client(self.port)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve.py exited with {self.process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                status, _, body = self.client.get("/health")
                if status == 200 and body.get("errorMsg") == "Healthy":
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"serve.py did not become healthy in {startup_timeout} s:\n{log.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        """The main process and its children (HTTP process, model process, LitServe's manager)."""
        found = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found

    def rss_mb(self) -> float:
        """Resident memory of all the server's processes, in MB."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)


class ImageHost:
    """Local HTTP server for image URLs: /photo.jpg, /slow.jpg (answers after 1 s), /held.jpg (answers once
    ``release`` is set; ``held`` counts those waiting), /hang (never
    answers), /big (2 MB), /page.html, /redirect-refused (302 to 127.0.0.2), /redirect-ok (302 to /photo.jpg)."""

    def __init__(self, photo: bytes) -> None:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: bytes, kind: str = "image/jpeg", status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/photo.jpg":
                    self._send(photo)
                elif path == "/slow.jpg":
                    time.sleep(1.0)
                    self._send(photo)
                elif path == "/held.jpg":
                    with host.lock:
                        host.held += 1
                    try:
                        host.release.wait(30)
                    finally:
                        with host.lock:
                            host.held -= 1
                    self._send(photo)
                elif path == "/hang":
                    host.hanging.wait(30)
                elif path == "/big":
                    self._send(b"\xff" * (2 * 1024 * 1024), "application/octet-stream")
                elif path == "/page.html":
                    self._send(b"<!doctype html><html><body>not an image</body></html>", "text/html")
                elif path.startswith("/redirect-"):
                    target = f"http://127.0.0.2:{host.port}/photo.jpg" if path == "/redirect-refused" else "/photo.jpg"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(b"missing", "text/plain", 404)

        self.hanging = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.held = 0
        """How many /held.jpg requests are waiting for ``release`` now (each is a request inside the service)."""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.hanging.set()
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="session")
def photos(data_dir: Path) -> list[Path]:
    """../shared/data/photos (held-out style photos, up to 4 people each)."""
    return sorted((data_dir / "photos").glob("*.jpg"))


@pytest.fixture(scope="session")
def coco_images(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "coco_dev" / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def image_host(photos: list[Path]) -> Iterator[ImageHost]:
    host = ImageHost(photos[-1].read_bytes())
    yield host
    host.close()


@pytest.fixture(scope="session")
def server(openvino_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One ``python serve.py`` for the serve tests (small limits, batching on, 127.0.0.1 allowed)."""
    process = ServeProcess(openvino_dir, SERVER_OPTIONS, tmp_path_factory.mktemp("serve") / "serve.log")
    yield process
    code = process.stop()
    assert code == 0, f"serve.py exited with {code} after SIGTERM:\n{process.log_path.read_text()[-3000:]}"


@pytest.fixture(scope="session")
def client(server: ServeProcess) -> Client:
    return server.client


@pytest.fixture(scope="session")
def two_model_server(openvino_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``python serve.py`` with both pose models loaded (``extra_models``): a request's ``model`` picks one."""
    weights = openvino_dir / "tinypose_256x192" / "model.xml"
    options = (*SERVER_OPTIONS, f"extra_models={{PP-TinyPose_256x192: {weights}}}")
    process = ServeProcess(openvino_dir, options, tmp_path_factory.mktemp("serve2") / "serve.log")
    yield process
    code = process.stop()
    assert code == 0, f"serve.py exited with {code} after SIGTERM:\n{process.log_path.read_text()[-3000:]}"


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by its own chromedriver through Selenium: both paths given
    explicitly, so Selenium Manager never runs and nothing is downloaded; a new empty profile."""
    pytest.importorskip("selenium", reason="needs selenium (pip install -e '.[dev]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_argument("--window-size=1100,1300")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
