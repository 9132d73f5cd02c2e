"""Input readers and error handling: arrays, files, folders, lists, URLs (loopback server), videos."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinypose.predict import InputError, create_model, iter_inputs
from tinypose.predict.inputs import (
    InputItem,
    VideoSource,
    count_inputs,
    decode_image_bytes,
    fetch_url,
    iter_batches,
    prefetch,
    to_bgr8,
)


@pytest.fixture(scope="module")
def photo(e2e_dir: Path) -> Path:
    return e2e_dir / "images" / "demo_3.jpg"


def _keypoints(result) -> np.ndarray:
    return np.asarray(result["kpts"][0]["keypoints"])


def test_numpy_bgr_array_equals_file_path(predictors, photo: Path) -> None:
    from_path = next(predictors[False].predict(str(photo)))
    from_array = next(predictors[False].predict(cv2.imread(str(photo))))
    assert from_array["input_path"] is None and from_path["input_path"] == str(photo)
    np.testing.assert_array_equal(_keypoints(from_array), _keypoints(from_path))


def test_grayscale_rgba_16bit_and_float_images_are_converted(tmp_path: Path, photo: Path) -> None:
    bgr = cv2.imread(str(photo))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    read_gray = decode_image_bytes((tmp_path / "gray.png").read_bytes(), "gray.png")
    assert read_gray.shape == bgr.shape and (read_gray == gray[..., None]).all()

    bgra = np.dstack([bgr, np.full(gray.shape, 255, np.uint8)])
    bgra[:10, :10, 3] = 0  # transparent corner -> white
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    read_rgba = decode_image_bytes((tmp_path / "rgba.png").read_bytes(), "rgba.png")
    assert (read_rgba[:10, :10] == 255).all()
    np.testing.assert_array_equal(read_rgba[10:, 10:], bgr[10:, 10:])

    deep = bgr.astype(np.uint16) * 256 + 100
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    read_deep = decode_image_bytes((tmp_path / "deep.png").read_bytes(), "deep.png")
    np.testing.assert_array_equal(read_deep, cv2.imread(str(tmp_path / "deep.png"), cv2.IMREAD_COLOR))
    np.testing.assert_array_equal(read_deep, bgr)

    np.testing.assert_array_equal(to_bgr8(bgr.astype(np.float32) / 255), bgr)
    np.testing.assert_array_equal(to_bgr8(gray[..., None]), read_gray)


def test_arrays_that_are_not_images_are_refused(predictors) -> None:
    with pytest.raises(InputError, match=r"shape \(2, 8, 8, 3\).*list"):
        next(predictors[False].predict(np.zeros((2, 8, 8, 3), np.uint8)))
    with pytest.raises(InputError, match="unsupported input type dict"):
        next(predictors[False].predict({"img": 1}))


def test_missing_and_non_image_files_name_the_input(predictors, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jpg: no such file"):
        next(predictors[False].predict(str(tmp_path / "nope.jpg")))
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(InputError, match=r"notes\.jpg: not an image"):
        next(predictors[False].predict(str(tmp_path / "notes.jpg")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: folder holds no image files"):
        next(predictors[False].predict(str(tmp_path / "empty")))


def test_folder_is_sorted_and_recursive_and_a_bad_file_is_skipped(tmp_path: Path, photo: Path, predictors) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy(photo, tmp_path / "b.jpg")
    shutil.copy(photo, tmp_path / "sub" / "a.jpg")
    (tmp_path / "a_broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "readme.txt").write_text("ignored: not an image suffix")
    model = predictors[False].model
    predictor = create_model("PP-TinyPose_128x96", device="cpu", model=model)
    results = list(predictor.predict(str(tmp_path), batch_size=2))
    assert [Path(r["input_path"]).relative_to(tmp_path).as_posix() for r in results] == ["b.jpg", "sub/a.jpg"]
    assert [e.source for e in predictor.errors] == [str(tmp_path / "a_broken.png")]
    assert count_inputs(str(tmp_path)) == 3

    stopping = create_model("PP-TinyPose_128x96", device="cpu", model=model, on_error="raise")
    with pytest.raises(InputError, match="a_broken.png: not an image"):
        list(stopping.predict([str(tmp_path / "b.jpg"), str(tmp_path / "a_broken.png")]))


def test_list_mixes_arrays_paths_and_missing_files(predictors, photo: Path) -> None:
    image = cv2.imread(str(photo))
    results = list(predictors[False].predict([image, "missing.jpg", str(photo)], batch_size=2))
    assert [r["input_path"] for r in results] == [None, str(photo)]
    assert "missing.jpg: no such file" in str(predictors[False].errors[0])
    np.testing.assert_array_equal(_keypoints(results[0]), _keypoints(results[1]))


class _Handler(http.server.BaseHTTPRequestHandler):
    photo_bytes = b""

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/photo.jpg":
            self._send(200, "image/jpeg", self.photo_bytes)
        elif self.path == "/page.html":
            self._send(200, "text/html", b"<!DOCTYPE html><html><body>hello</body></html>")
        elif self.path == "/slow.jpg":
            time.sleep(1.5)
            self._send(200, "image/jpeg", self.photo_bytes)
        else:
            self._send(404, "text/plain", b"missing")

    def _send(self, code: int, kind: str, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server(photo: Path):
    _Handler.photo_bytes = photo.read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_url_input_equals_the_file(predictors, server: str, photo: Path) -> None:
    result = next(predictors[False].predict(f"{server}/photo.jpg"))
    assert result["input_path"] == f"{server}/photo.jpg"
    np.testing.assert_array_equal(_keypoints(result), _keypoints(next(predictors[False].predict(str(photo)))))


def test_url_errors_are_specific(server: str, photo: Path) -> None:
    with pytest.raises(InputError, match="HTTP error 404"):
        next(iter_inputs(f"{server}/nothing.jpg"))
    with pytest.raises(InputError, match="page.html: not an image \\(got an HTML page"):
        next(iter_inputs(f"{server}/page.html"))
    with pytest.raises(InputError, match="larger than the limit of 1000 bytes"):
        next(iter_inputs(f"{server}/photo.jpg", max_download_bytes=1000))
    started = time.monotonic()
    with pytest.raises(InputError, match="timed out after 0.3 s"):
        fetch_url(f"{server}/slow.jpg", timeout=0.3)
    assert time.monotonic() - started < 1.2
    with pytest.raises(InputError, match="cannot download"):
        fetch_url("http://127.0.0.1:9/photo.jpg", timeout=2)


def _write_clip(path: Path, photo: Path, frames: int) -> None:
    image = cv2.resize(cv2.imread(str(photo)), (96, 112))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 112))
    assert writer.isOpened()
    for index in range(frames):
        writer.write(np.roll(image, 4 * index, axis=1))
    writer.release()


def test_video_gives_a_result_per_frame_and_an_annotated_video(predictors, tmp_path: Path, photo: Path) -> None:
    clip = tmp_path / "clip.mp4"
    _write_clip(clip, photo, frames=4)
    assert count_inputs(str(clip)) == 4
    out = tmp_path / "out"
    results = []
    for result in predictors[False].predict(str(clip), batch_size=3):
        result.save_to_video(out)
        results.append(result)
    assert [r["frame_index"] for r in results] == [0, 1, 2, 3]
    assert all(r["input_path"] == str(clip) and len(r["kpts"]) == 1 for r in results)
    capture = cv2.VideoCapture(str(out / "clip_res.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (96, 112)
    capture.release()
    with pytest.raises(ValueError, match="not a video frame"):
        next(predictors[False].predict(str(photo))).save_to_video(out)


def test_prefetch_keeps_order_reraises_and_stops_when_closed() -> None:
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise InputError("x.jpg", "broken")

    stream = prefetch(failing(), depth=2)
    assert next(stream) == 1
    with pytest.raises(InputError, match="x.jpg: broken"):
        next(stream)
    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    stream = prefetch(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed == [True]
    assert not any(t.name == "tinypose-prefetch" and t.is_alive() for t in threading.enumerate())


def test_jpeg_exif_orientation_is_handled_like_paddlex(tmp_path: Path) -> None:
    """PaddleX decodes with ``cv2.imdecode(..., IMREAD_COLOR)``, which applies the EXIF orientation."""
    import io

    from PIL import Image

    pixels = (np.arange(40 * 60 * 3) % 251).astype(np.uint8).reshape(40, 60, 3)
    picture = Image.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    paddlex_way = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    ours = decode_image_bytes(data, "rotated.jpg")
    assert ours.shape == paddlex_way.shape == (60, 40, 3)
    np.testing.assert_array_equal(ours, paddlex_way)


def test_batches_skip_or_raise_bad_inputs_and_finish_each_video_after_its_last_batch() -> None:
    """The batching shared by the predictor and the pipeline: positions count every input, a video's
    outputs are not finished while a batch with its frames is being consumed, and are at the end."""
    image = np.zeros((4, 4, 3), np.uint8)
    clip = VideoSource("clip.mp4", 25.0, 3, 4, 4)
    bad = InputError("broken.jpg", "not an image")
    items = [
        InputItem(image, "a.jpg"),
        InputItem(None, "broken.jpg", error=bad),
        *(InputItem(image, "clip.mp4", frame_index=i, video=clip) for i in range(3)),
        InputItem(image, "b.jpg"),
    ]
    errors: list[InputError] = []
    done: list[VideoSource] = []
    batches = iter_batches(iter(items), 2, "skip", errors, on_video_done=done.append)
    seen = []
    for batch in batches:
        seen.append([(position, item.name) for position, item in batch])
        if batch[-1][1].name == "clip.mp4 frame 2":
            assert done == []  # the batch with the last frame is still being consumed
    assert seen == [
        [(0, "a.jpg"), (2, "clip.mp4 frame 0")],
        [(3, "clip.mp4 frame 1"), (4, "clip.mp4 frame 2")],
        [(5, "b.jpg")],
    ]
    assert errors == [bad] and done == [clip]
    with pytest.raises(InputError, match="broken.jpg: not an image"):
        list(iter_batches(iter(items), 2, "raise"))
