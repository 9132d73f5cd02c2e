// The tinypose page: a client of the service's public HTTP API, like any other.
//   GET  info                      -> the pose models loaded and the defaults (flip, detThreshold, limits)
//   POST human-keypoint-detection  -> {"image": base64, "detThreshold", "flip", "model", "visualize": true}
// Paths are relative, so the page also works behind a route prefix. A video is sampled here, one
// JPEG frame per request. Every failure ends as a readable message on the page, never only in the console.
"use strict";

(() => {
  const INFER = "human-keypoint-detection";
  const INFO = "info";
  const MAX_FRAMES = 120; // a short video: at most this many requests per clip
  const MAX_FRAME_SIDE = 1280; // video frames are sent at most this large on their long side
  const VIDEO_NAME = /\.(mp4|m4v|mov|webm|ogv|ogg|mkv|avi)$/i;

  const $ = (id) => document.getElementById(id);
  const ui = {
    service: $("service"), drop: $("drop"), file: $("file"), modelLabel: $("model-label"), model: $("model"),
    modelOnly: $("model-only"), flip: $("flip"), threshold: $("threshold"), thresholdValue: $("threshold-value"),
    fps: $("fps"), maxFrames: $("max-frames"), run: $("run"), cancel: $("cancel"), progressBox: $("progress-box"),
    progress: $("progress"), progressText: $("progress-text"), status: $("status"), error: $("error"),
    result: $("result"), frameNav: $("frame-nav"), frame: $("frame"), frameLabel: $("frame-label"),
    drawing: $("drawing"), labels: $("labels"), caption: $("caption"), persons: $("persons"),
    personsTitle: $("persons-title"), download: $("download"),
  };

  let info = null; // the result of GET info, or null when it could not be read
  let current = null; // the chosen File
  let controller = null; // AbortController of the run in progress
  let frames = []; // results shown: [{index, time, logId, persons, image, width, height}]
  let downloadUrl = null;

  // ---- messages -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const isAbort = (error) => error && error.name === "AbortError";
  const abortError = () => new DOMException("cancelled", "AbortError");

  function announce(text) {
    ui.status.textContent = text;
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = false;
  }

  function clearError() {
    ui.error.textContent = "";
    ui.error.hidden = true;
  }

  // PaddleX's 422 errorMsg is a JSON list of {type, loc, msg}: shown as "loc: msg" lines.
  function readable(errorMsg) {
    try {
      const items = JSON.parse(errorMsg);
      if (Array.isArray(items) && items.every((item) => item && item.msg)) {
        return items.map((item) => (item.loc ? `${item.loc}: ${item.msg}` : item.msg)).join("\n");
      }
    } catch (ignored) {
      // not JSON: the message is already a sentence
    }
    return String(errorMsg);
  }

  function describe(error) {
    if (error instanceof ApiError) {
      return error.status ? `The service answered ${error.status}: ${readable(error.message)}` : error.message;
    }
    return error && error.message ? error.message : String(error);
  }

  window.addEventListener("error", (event) => showError(`Something went wrong on this page: ${event.message}`));
  window.addEventListener("unhandledrejection", (event) => {
    if (!isAbort(event.reason)) showError(`Something went wrong on this page: ${describe(event.reason)}`);
  });

  const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const people = (n) => (n === 1 ? "1 person" : `${n} people`);

  // ---- the API ----------------------------------------------------------------------------------

  async function loadInfo() {
    try {
      const response = await fetch(INFO, { cache: "no-store" });
      let body = null;
      try {
        body = await response.json();
      } catch (ignored) {
        throw new ApiError(response.status, `GET ${INFO} did not answer JSON (HTTP ${response.status})`);
      }
      if (!response.ok || body.errorCode !== 0) throw new ApiError(response.status, body.errorMsg || "no errorMsg");
      info = body.result;
    } catch (error) {
      info = null;
      ui.service.textContent = "The service's settings could not be read; the page uses its own defaults.";
      showError(`Could not read the service's settings (GET ${INFO}): ${describe(error)}`);
      ui.modelOnly.textContent = "the service's default";
      ui.modelLabel.removeAttribute("for");
      return;
    }
    const models = info.models || [];
    ui.service.textContent =
      `Service: ${models.join(" and ")} with the ${info.detector} person detector (tinypose ${info.version}).`;
    if (models.length > 1) {
      for (const name of models) ui.model.add(new Option(name, name, name === info.model, name === info.model));
      ui.model.hidden = false;
      ui.modelOnly.textContent = "";
    } else {
      ui.model.hidden = true;
      ui.modelLabel.removeAttribute("for");
      ui.modelOnly.textContent = `${models[0] || "unknown"} (the only one this service loaded)`;
    }
    ui.flip.checked = Boolean(info.flip);
    const threshold = info.detThreshold === null || info.detThreshold === undefined ? 0 : info.detThreshold;
    ui.threshold.value = String(threshold);
    showThreshold();
  }

  function options() {
    const chosen = {
      detThreshold: Number(ui.threshold.value),
      flip: ui.flip.checked,
      visualize: true,
    };
    if (info && info.models && info.models.length > 1) chosen.model = ui.model.value;
    return chosen;
  }

  function modelName(chosen) {
    return chosen.model || (info && info.model) || "the default model";
  }

  // POST a JSON body: XMLHttpRequest for the upload progress, cancelled through the AbortSignal.
  function postJson(url, payload, signal, onUpload) {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(abortError());
        return;
      }
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Content-Type", "application/json");
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable && onUpload) onUpload(event.loaded, event.total);
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (ignored) {
          body = null;
        }
        if (xhr.status === 200 && body && body.errorCode === 0 && body.result) resolve(body);
        else if (body && body.errorMsg) reject(new ApiError(xhr.status, body.errorMsg));
        else reject(new ApiError(xhr.status, `HTTP ${xhr.status} ${xhr.statusText} without an error message`));
      };
      xhr.onerror = () => reject(new ApiError(0, "The service could not be reached (network error); is it still running?"));
      xhr.onabort = () => reject(abortError());
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(JSON.stringify(payload));
    });
  }

  function checkSize(base64Length, what) {
    const limit = info && info.maxBodyBytes;
    if (limit && base64Length + 200 > limit) {
      throw new Error(`${what} would be ${bytes(base64Length)} in base64, ` +
        `over this service's limit of ${bytes(limit)} per request; nothing was sent.`);
    }
  }

  // ---- progress ---------------------------------------------------------------------------------

  function progress(fraction, text) {
    ui.progressBox.hidden = false;
    if (fraction === null) ui.progress.removeAttribute("value"); // indeterminate: waiting for the service
    else ui.progress.value = Math.max(0, Math.min(1, fraction));
    ui.progressText.textContent = text;
  }

  function busy(on) {
    ui.cancel.hidden = !on;
    ui.run.disabled = on || !current;
    ui.result.setAttribute("aria-busy", on ? "true" : "false");
    if (!on) ui.progressBox.hidden = true;
  }

  // ---- results ----------------------------------------------------------------------------------

  function showFrame(position) {
    const frame = frames[position];
    if (!frame) return;
    ui.result.hidden = false;
    ui.drawing.onload = () => {
      fitDrawing();
      drawLabels(frame.persons, ui.drawing.naturalWidth, ui.drawing.naturalHeight);
    };
    ui.drawing.src = `data:image/jpeg;base64,${frame.image}`;
    const count = frame.persons.length;
    const where = frame.time === null ? current.name : `${current.name} at ${frame.time.toFixed(2)} s`;
    ui.drawing.alt = `Drawing of ${where}: ${people(count)} with boxes and skeletons, numbered as in the list below.`;
    ui.caption.textContent = frame.time === null
      ? `${people(count)}; joints scoring below ${info ? info.drawThreshold : 0.3} are not drawn.`
      : `Frame ${position + 1} of ${frames.length} (${frame.time.toFixed(2)} s): ${people(count)}.`;
    ui.personsTitle.textContent = frame.time === null ? "People" : `People in frame ${position + 1}`;
    ui.persons.replaceChildren(...frame.persons.map(personItem));
    if (!count) {
      const none = document.createElement("li");
      none.textContent = "No one above the detection threshold.";
      ui.persons.append(none);
    }
    if (frames.length > 1 || frame.time !== null) {
      ui.frameNav.hidden = false;
      ui.frame.max = String(frames.length - 1);
      ui.frame.value = String(position);
      ui.frameLabel.textContent = `${position + 1} of ${frames.length}`;
    } else {
      ui.frameNav.hidden = true;
    }
  }

  function personItem(person, index) {
    const item = document.createElement("li");
    const [x1, y1, x2, y2] = person.bbox.map((v) => Math.round(v));
    const seen = person.kpts.filter((point) => point[2] >= (info ? info.drawThreshold : 0.3)).length;
    const scores = document.createElement("span");
    scores.className = "scores";
    scores.textContent =
      `detection ${person.detScore.toFixed(2)}, keypoints ${person.kptScore.toFixed(2)}`;
    item.append(`Person ${index + 1}: `, scores, `; ${seen} of ${person.kpts.length} joints drawn; box (${x1}, ${y1})–(${x2}, ${y2})`);
    return item;
  }

  // The drawing as large as the window allows (small photos up to twice their size), never wider than the page.
  function fitDrawing() {
    const width = ui.drawing.naturalWidth;
    const height = ui.drawing.naturalHeight;
    if (!width || !height) return;
    const room = ui.result.clientWidth || width;
    const scale = Math.min(room / width, (0.8 * window.innerHeight) / height, 2);
    ui.drawing.style.width = `${Math.floor(width * scale)}px`;
  }

  // Person numbers over the service's drawing, at each box's top-left corner, as in the list.
  function drawLabels(persons, width, height) {
    const svg = "http://www.w3.org/2000/svg";
    ui.labels.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const size = Math.max(14, Math.round(Math.max(width, height) / 40));
    const nodes = persons.map((person, index) => {
      const group = document.createElementNS(svg, "g");
      const x = Math.max(0, Math.min(width - size * 1.6, person.bbox[0]));
      const y = Math.max(0, Math.min(height - size * 1.3, person.bbox[1]));
      const box = document.createElementNS(svg, "rect");
      const label = String(index + 1);
      box.setAttribute("x", x);
      box.setAttribute("y", y);
      box.setAttribute("width", size * (0.5 + 0.65 * label.length));
      box.setAttribute("height", size * 1.3);
      box.setAttribute("rx", size * 0.2);
      const text = document.createElementNS(svg, "text");
      text.setAttribute("x", x + size * 0.25);
      text.setAttribute("y", y + size * 1.0);
      text.setAttribute("font-size", size);
      text.textContent = label;
      group.append(box, text);
      return group;
    });
    ui.labels.replaceChildren(...nodes);
  }

  function offerJson(chosen) {
    const stem = current.name.replace(/\.[^.]*$/, "") || "result";
    const request = { detThreshold: chosen.detThreshold, flip: chosen.flip, model: modelName(chosen) };
    const strip = (frame) => ({ logId: frame.logId, persons: frame.persons });
    const body = frames.length === 1 && frames[0].time === null
      ? { file: current.name, request, ...strip(frames[0]) }
      : { file: current.name, request, frames: frames.map((f) => ({ index: f.index, time: f.time, ...strip(f) })) };
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = URL.createObjectURL(new Blob([JSON.stringify(body, null, 2)], { type: "application/json" }));
    ui.download.href = downloadUrl;
    ui.download.download = `${stem}.tinypose.json`;
  }

  function resetResult() {
    frames = [];
    ui.result.hidden = true;
    ui.frameNav.hidden = true;
    ui.persons.replaceChildren();
    ui.labels.replaceChildren();
    ui.drawing.removeAttribute("src");
  }

  // ---- a photo ----------------------------------------------------------------------------------

  function readBase64(blob, signal, onProgress) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onprogress = (event) => {
        if (event.lengthComputable && onProgress) onProgress(event.loaded, event.total);
      };
      reader.onload = () => {
        const url = String(reader.result);
        resolve(url.slice(url.indexOf(",") + 1));
      };
      reader.onerror = () => reject(new Error(`The file could not be read (${reader.error && reader.error.message}).`));
      reader.onabort = () => reject(abortError());
      signal.addEventListener("abort", () => reader.abort(), { once: true });
      reader.readAsDataURL(blob);
    });
  }

  async function runPhoto(file, chosen, signal) {
    const started = performance.now();
    progress(0, `Reading ${file.name} (${bytes(file.size)})…`);
    const image = await readBase64(file, signal, (done, total) => progress(0.1 * done / total, `Reading ${file.name}…`));
    checkSize(image.length, "the photo");
    const body = await postJson(INFER, { image, ...chosen }, signal, (done, total) => {
      if (done < total) progress(0.1 + 0.8 * done / total, `Sending ${bytes(done)} of ${bytes(total)}…`);
      else progress(null, `Waiting for the service (${modelName(chosen)})…`);
    });
    progress(null, `Waiting for the service (${modelName(chosen)})…`);
    frames = [{ index: 0, time: null, logId: body.logId, persons: body.result.persons, image: body.result.image }];
    showFrame(0);
    offerJson(chosen);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    announce(`${file.name}: ${people(frames[0].persons.length)} found in ${seconds} s ` +
      `(${modelName(chosen)}, flip ${chosen.flip ? "on" : "off"}, detection threshold ${chosen.detThreshold.toFixed(2)}).`);
  }

  // ---- a video: frames taken here, one request each ---------------------------------------------

  function once(target, name, signal, timeoutMs) {
    return new Promise((resolve, reject) => {
      const done = (callback) => (event) => {
        target.removeEventListener(name, onEvent);
        target.removeEventListener("error", onError);
        signal.removeEventListener("abort", onAbort);
        clearTimeout(timer);
        callback(event);
      };
      const onEvent = done(resolve);
      const onError = done(() => reject(new Error("the browser cannot decode this video" +
        `${target.error && target.error.message ? ` (${target.error.message})` : ""}.`)));
      const onAbort = done(() => reject(abortError()));
      const timer = setTimeout(done(() => reject(new Error(`no answer from the video decoder in ${timeoutMs / 1000} s.`))), timeoutMs);
      target.addEventListener(name, onEvent);
      target.addEventListener("error", onError);
      signal.addEventListener("abort", onAbort);
    });
  }

  function frameTimes(duration, fps) {
    const times = [];
    for (let t = 0; t < duration - 1e-3 && times.length < MAX_FRAMES; t += 1 / fps) times.push(Number(t.toFixed(3)));
    return times.length ? times : [0];
  }

  async function jpegBase64(canvas, signal) {
    const blob = await new Promise((resolve, reject) => canvas.toBlob(
      (made) => (made ? resolve(made) : reject(new Error("The frame could not be encoded as JPEG."))), "image/jpeg", 0.9));
    return readBase64(blob, signal);
  }

  async function runVideo(file, chosen, signal) {
    const url = URL.createObjectURL(file);
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.preload = "auto";
    try {
      progress(null, `Opening ${file.name}…`);
      const opened = once(video, "loadeddata", signal, 30000);
      video.src = url;
      await opened;
      if (!video.videoWidth) throw new Error("the browser found no video picture in it.");
      if (!Number.isFinite(video.duration)) throw new Error("the browser cannot tell how long it is (a live or unfinished recording?).");
      const fps = Number(ui.fps.value);
      const times = frameTimes(video.duration, fps);
      const scale = Math.min(1, MAX_FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight),
        info && info.maxPixels ? Math.sqrt(info.maxPixels / (video.videoWidth * video.videoHeight)) : 1);
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.floor(video.videoWidth * scale));
      canvas.height = Math.max(1, Math.floor(video.videoHeight * scale));
      const context = canvas.getContext("2d");
      const started = performance.now();
      const capped = times.length === MAX_FRAMES && (MAX_FRAMES / fps) < video.duration - 1e-3;
      for (const [index, time] of times.entries()) {
        progress(index / times.length, `Frame ${index + 1} of ${times.length} (${time.toFixed(2)} s)…`);
        const seeked = once(video, "seeked", signal, 30000);
        video.currentTime = time;
        await seeked;
        context.drawImage(video, 0, 0, canvas.width, canvas.height);
        const image = await jpegBase64(canvas, signal);
        checkSize(image.length, `frame ${index + 1}`);
        const body = await postJson(INFER, { image, ...chosen }, signal);
        frames.push({ index, time, logId: body.logId, persons: body.result.persons, image: body.result.image });
        showFrame(frames.length - 1);
        offerJson(chosen);
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const most = Math.max(0, ...frames.map((f) => f.persons.length));
      announce(`${file.name}: ${plural(frames.length, "frame")} analysed in ${seconds} s, up to ${people(most)} per frame ` +
        `(${modelName(chosen)}, flip ${chosen.flip ? "on" : "off"}, detection threshold ${chosen.detThreshold.toFixed(2)})` +
        `${capped ? `; only the first ${MAX_FRAMES} frames were taken` : ""}. Use the Frame slider to look at each one.`);
    } finally {
      video.removeAttribute("src");
      video.load();
      URL.revokeObjectURL(url);
    }
  }

  // ---- running ----------------------------------------------------------------------------------

  function isVideo(file) {
    return file.type.startsWith("video/") || (!file.type.startsWith("image/") && VIDEO_NAME.test(file.name));
  }

  async function run() {
    if (!current) return;
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    const file = current;
    const chosen = options();
    clearError();
    resetResult();
    busy(true);
    announce(`Working on ${file.name}…`);
    try {
      if (isVideo(file)) await runVideo(file, chosen, mine.signal);
      else await runPhoto(file, chosen, mine.signal);
    } catch (error) {
      if (isAbort(error)) {
        if (controller === mine) {
          announce(frames.length
            ? `Cancelled: ${plural(frames.length, "frame")} of ${file.name} analysed before that (shown below).`
            : `Cancelled: ${file.name} was not analysed.`);
        }
      } else {
        announce(frames.length
          ? `${file.name}: stopped after ${plural(frames.length, "frame")} (shown below) by an error.`
          : `${file.name}: no result.`);
        showError(`${file.name}: ${describe(error)}`);
      }
    } finally {
      if (controller === mine) {
        controller = null;
        busy(false);
      }
    }
  }

  function choose(file) {
    if (!file) return;
    current = file;
    run();
  }

  function showThreshold() {
    ui.thresholdValue.textContent = Number(ui.threshold.value).toFixed(2);
  }

  ui.file.addEventListener("change", () => choose(ui.file.files[0]));
  ui.run.addEventListener("click", run);
  ui.cancel.addEventListener("click", () => {
    if (controller) controller.abort();
  });
  ui.threshold.addEventListener("input", showThreshold);
  ui.frame.addEventListener("input", () => showFrame(Number(ui.frame.value)));
  ui.maxFrames.textContent = String(MAX_FRAMES);
  window.addEventListener("resize", fitDrawing);
  for (const name of ["dragenter", "dragover"]) {
    ui.drop.addEventListener(name, (event) => {
      event.preventDefault();
      ui.drop.classList.add("over");
    });
  }
  ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("over"));
  ui.drop.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.drop.classList.remove("over");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) choose(file);
    else showError("Nothing to read in what was dropped: drop a photo or a video file.");
  });
  loadInfo();
})();
