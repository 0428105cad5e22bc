// pconv web editor: open a photo, paint the hole (white = hole in the mask sent), inpaint, compare, download.
// Two engines: "server" posts to this server (POST /api/v1/inpaint, GET /health); "browser" runs the model in a
// Web Worker (static/worker.js, ONNX Runtime Web) and sends the photo nowhere. `pconv serve`'s page fills on the
// server and offers "this computer" when the server has ONNX Runtime Web's files (/health: browser_fill); the docs'
// Try it page (<body data-engine="browser">) has the browser engine only, and on a static host a service worker
// (sw.js) to make it cross-origin isolated (WebAssembly threads). Neither loads anything from another origin.
// The page's scripting interface, where the browser engine is on offer:
//   window.pconv.inpaint(image: ImageData, hole: ImageData) -> Promise<ImageData> (hole: white = hole; with
//   transparency, opaque = hole), the same fill as the Inpaint button; window.pconv.ready() -> Promise of the
//   engine's {provider: "webgpu" | "wasm", threads, isolated, downloaded (bytes), seconds}.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), fileInput: $("file-input"), maskInput: $("mask-input"),
    brush: $("tool-brush"), eraser: $("tool-eraser"), size: $("size"), sizeValue: $("size-value"),
    undo: $("undo"), redo: $("redo"), clear: $("clear"), dilate: $("dilate"), run: $("run"),
    resultSection: $("result-section"), compare: $("compare"), download: $("download"), revert: $("revert"),
    stage: $("stage"), dropzone: $("dropzone"), wrap: $("canvas-wrap"), cursor: $("cursor"), divider: $("divider"),
    photo: $("photo-canvas"), before: $("before-canvas"), mask: $("mask-canvas"),
    engineChoice: $("engine-choice"), engineBrowser: $("engine-browser"), engineServer: $("engine-server"),
    progress: $("progress"), progressBar: $("progress-bar"), progressText: $("progress-text"),
  };
  const BROWSER_ONLY = document.body.dataset.engine === "browser"; // the Try it page: no server behind it
  // ?ep=webgpu or ?ep=wasm picks ONNX Runtime Web's execution provider (default: WebGPU where there is a GPU)
  const PREFER = new URLSearchParams(location.search).get("ep") || "auto";
  const PAINT = [37, 99, 235]; // the accent blue: stands out on skin, foliage and sky alike
  const HOLE_ALPHA = 128; // mask pixels at least this opaque are sent as hole (what the overlay shows)

  const state = {
    width: 0, height: 0, scale: 1, name: "photo",
    original: null, // the opened file (Blob), sent as is on the first run so known pixels stay the file's own
    source: null, // what the next run fills: the original, then the latest result
    result: null, resultUrl: null,
    ops: [], redone: [], stroke: null, tool: "brush", busy: false,
    limits: null,
    engine: BROWSER_ONLY ? "browser" : "server", // where the next fill runs
  };

  // ---------- status and buttons ----------
  function setStatus(text, kind = "") {
    ui.status.textContent = text;
    ui.status.className = "status " + kind;
  }

  function refreshButtons() {
    const open = state.width > 0;
    ui.undo.disabled = !open || state.busy || state.ops.length === 0;
    ui.redo.disabled = !open || state.busy || state.redone.length === 0;
    ui.clear.disabled = !open || state.busy || maskIsEmptyByOps();
    ui.run.disabled = !open || state.busy;
    ui.run.textContent = state.busy ? "Inpainting…" : "Inpaint";
    ui.maskInput.disabled = !open;
    $("mask-label").classList.toggle("disabled", !open);
    ui.download.classList.toggle("disabled", !state.result || state.busy);
  }

  function maskIsEmptyByOps() {
    const last = state.ops[state.ops.length - 1];
    return !last || last.kind === "clear";
  }

  // ---------- opening a photo ----------
  async function loadImage(blob) {
    const img = new Image();
    const url = URL.createObjectURL(blob);
    img.src = url;
    try {
      await img.decode(); // EXIF orientation applied, as the server does
    } finally {
      URL.revokeObjectURL(url);
    }
    return img;
  }

  async function openPhoto(file) {
    if (!file) return;
    if (state.busy) return setStatus("Wait for the running inpaint to finish.", "error");
    let img;
    try {
      img = await loadImage(file);
    } catch (err) {
      return setStatus(`${file.name || "That file"} is not an image this browser can open.`, "error");
    }
    Object.assign(state, {
      width: img.naturalWidth, height: img.naturalHeight, name: stem(file.name || "photo"),
      original: file, source: file, ops: [], redone: [], stroke: null,
    });
    setResult(null);
    for (const canvas of [ui.photo, ui.before, ui.mask]) {
      canvas.width = state.width;
      canvas.height = state.height;
    }
    ui.photo.getContext("2d").drawImage(img, 0, 0);
    ui.before.getContext("2d").drawImage(img, 0, 0);
    redrawMask();
    ui.dropzone.hidden = true;
    ui.wrap.hidden = false;
    layout();
    refreshButtons();
    setStatus(`${file.name || "photo"} · ${state.width}×${state.height} — paint over what should go, then Inpaint.`);
    warnIfTooLarge(file);
  }

  function warnIfTooLarge(file) {
    const lim = state.limits;
    if (!lim || state.engine !== "server") return;
    if (file.size > lim.max_upload_bytes) {
      setStatus(`This file is ${mib(file.size)} MiB; the server accepts up to ${mib(lim.max_upload_bytes)} MiB.`, "error");
    } else if (state.width * state.height > lim.max_pixels) {
      setStatus(`This photo has ${state.width * state.height} pixels; the server accepts up to ${lim.max_pixels}.`, "error");
    }
  }

  const stem = (name) => name.replace(/\.[^.]*$/, "") || "photo";
  const mib = (bytes) => (bytes / 1048576).toFixed(1);

  // ---------- layout: fit the image into the stage ----------
  function layout() {
    if (!state.width) return;
    const pad = 24;
    const w = ui.stage.clientWidth - 2 * pad;
    const h = ui.stage.clientHeight - 2 * pad;
    state.scale = Math.max(0.01, Math.min(w / state.width, h / state.height));
    ui.wrap.style.width = `${Math.round(state.width * state.scale)}px`;
    ui.wrap.style.height = `${Math.round(state.height * state.scale)}px`;
    updateCursorSize();
  }

  // ---------- the mask: a history of operations, replayed on undo/redo ----------
  function applyOp(ctx, op) {
    if (op.kind === "clear") {
      ctx.clearRect(0, 0, state.width, state.height);
      return;
    }
    ctx.globalCompositeOperation = op.erase ? "destination-out" : "source-over";
    if (op.kind === "image") {
      ctx.drawImage(op.canvas, 0, 0);
    } else {
      drawPath(ctx, op.points, op.width);
    }
    ctx.globalCompositeOperation = "source-over";
  }

  function drawPath(ctx, points, width) {
    ctx.strokeStyle = ctx.fillStyle = `rgb(${PAINT.join(",")})`;
    ctx.lineWidth = width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (points.length === 1) {
      ctx.beginPath();
      ctx.arc(points[0][0], points[0][1], width / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(points[0][0], points[0][1]);
    for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }

  function redrawMask() {
    const ctx = ui.mask.getContext("2d");
    ctx.clearRect(0, 0, state.width, state.height);
    for (const op of state.ops) applyOp(ctx, op);
  }

  function pushOp(op) {
    state.ops.push(op);
    state.redone = [];
    refreshButtons();
  }

  function undo() {
    if (state.busy || !state.ops.length) return;
    state.redone.push(state.ops.pop());
    redrawMask();
    refreshButtons();
  }

  function redo() {
    if (state.busy || !state.redone.length) return;
    state.ops.push(state.redone.pop());
    redrawMask();
    refreshButtons();
  }

  function clearMask() {
    if (!state.width || maskIsEmptyByOps()) return;
    pushOp({ kind: "clear" });
    redrawMask();
  }

  // ---------- painting with the pointer ----------
  function toImage(event) {
    const rect = ui.mask.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * state.width,
      ((event.clientY - rect.top) / rect.height) * state.height,
    ];
  }

  function onPointerDown(event) {
    if (event.button !== 0 || state.busy || !state.width) return;
    event.preventDefault();
    ui.mask.setPointerCapture(event.pointerId);
    const op = { kind: "stroke", erase: state.tool === "eraser", width: brushSize() / state.scale, points: [toImage(event)] };
    state.stroke = op;
    applyOp(ui.mask.getContext("2d"), op);
  }

  function onPointerMove(event) {
    moveCursor(event);
    const op = state.stroke;
    if (!op) return;
    const point = toImage(event);
    const ctx = ui.mask.getContext("2d");
    applyOp(ctx, { ...op, points: [op.points[op.points.length - 1], point] });
    op.points.push(point);
  }

  function onPointerUp() {
    if (!state.stroke) return;
    pushOp(state.stroke);
    state.stroke = null;
    redrawMask(); // replay the whole path once, so the result equals what undo/redo will draw
  }

  // ---------- brush and cursor ----------
  const brushSize = () => Number(ui.size.value);

  function setBrushSize(px) {
    ui.size.value = String(Math.round(Math.min(Number(ui.size.max), Math.max(Number(ui.size.min), px))));
    ui.sizeValue.textContent = `${ui.size.value} px`;
    updateCursorSize();
  }

  function setTool(tool) {
    state.tool = tool;
    ui.brush.classList.toggle("active", tool === "brush");
    ui.eraser.classList.toggle("active", tool === "eraser");
    ui.cursor.classList.toggle("eraser", tool === "eraser");
  }

  function updateCursorSize() {
    ui.cursor.style.width = ui.cursor.style.height = `${brushSize()}px`;
  }

  function moveCursor(event) {
    const stageRect = ui.stage.getBoundingClientRect();
    ui.cursor.style.left = `${event.clientX - stageRect.left}px`;
    ui.cursor.style.top = `${event.clientY - stageRect.top}px`;
    ui.cursor.hidden = !state.width;
  }

  // ---------- uploading a mask ----------
  async function uploadMask(file) {
    if (!file || !state.width) return;
    let img;
    try {
      img = await loadImage(file);
    } catch (err) {
      return setStatus(`${file.name} is not an image this browser can open.`, "error");
    }
    const [w, h] = [img.naturalWidth, img.naturalHeight];
    if (Math.abs(w * state.height - h * state.width) > Math.max(w, h, state.width, state.height)) {
      return setStatus(`The mask is ${w}×${h} but the photo is ${state.width}×${state.height}: another aspect ratio.`, "error");
    }
    pushOp({ kind: "image", canvas: maskToPaint(img) });
    redrawMask();
    setStatus(`Mask ${file.name} loaded (white = hole); paint more or press Inpaint.`);
  }

  // White (or, for a mask painted on a transparent layer, opaque) pixels become paint; the rest stays clear.
  function maskToPaint(img) {
    const canvas = document.createElement("canvas");
    canvas.width = state.width;
    canvas.height = state.height;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, state.width, state.height);
    const data = ctx.getImageData(0, 0, state.width, state.height);
    const px = data.data;
    let transparent = false;
    for (let i = 3; i < px.length; i += 4) if (px[i] < 255) { transparent = true; break; }
    for (let i = 0; i < px.length; i += 4) {
      const grey = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      const hole = transparent ? px[i + 3] > 127 : grey > 127;
      [px[i], px[i + 1], px[i + 2], px[i + 3]] = [...PAINT, hole ? 255 : 0];
    }
    ctx.putImageData(data, 0, 0);
    return canvas;
  }

  // ---------- inpainting ----------
  // The mask sent: full resolution, white = hole, black = keep.
  function exportMask() {
    const src = ui.mask.getContext("2d").getImageData(0, 0, state.width, state.height).data;
    const canvas = document.createElement("canvas");
    canvas.width = state.width;
    canvas.height = state.height;
    const ctx = canvas.getContext("2d");
    const out = ctx.createImageData(state.width, state.height);
    let holes = 0;
    for (let i = 0; i < src.length; i += 4) {
      const v = src[i + 3] >= HOLE_ALPHA ? 255 : 0;
      holes += v ? 1 : 0;
      out.data[i] = out.data[i + 1] = out.data[i + 2] = v;
      out.data[i + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
    return new Promise((resolve) => canvas.toBlob((blob) => resolve({ blob, holes }), "image/png"));
  }

  async function runInpaint() {
    if (!state.width || state.busy) return;
    const dilate = Math.max(0, Math.min(64, Number(ui.dilate.value) || 0));
    const { blob, holes } = await exportMask();
    if (!holes) return setStatus("Paint over the area to fill first (or upload a mask).", "error");
    state.busy = true;
    refreshButtons();
    setStatus(`Inpainting ${holes} pixels…`, "busy");
    const started = performance.now();
    try {
      const png = state.engine === "browser" ? await fillHere(dilate) : await fillOnServer(blob, dilate);
      const img = await loadImage(png);
      ui.photo.getContext("2d").drawImage(img, 0, 0);
      state.source = png;
      setResult(png);
      pushOp({ kind: "clear" }); // the hole is filled: clear the paint (undo brings it back)
      redrawMask();
      setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s. Drag Compare to see before and after.`, "ok");
    } catch (err) {
      setStatus(`Inpainting failed: ${err.message}`, "error");
    } finally {
      state.busy = false;
      refreshButtons();
    }
  }

  async function fillOnServer(maskBlob, dilate) {
    const form = new FormData();
    form.append("image", state.source, state.source === state.original ? state.name + fileExt(state.original) : "current.png");
    form.append("mask", maskBlob, "mask.png");
    form.append("dilate", String(dilate));
    const response = await fetch("/api/v1/inpaint", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorText(response));
    return response.blob();
  }

  // The browser engine: the photo as shown, the painted hole, the worker's fill, as a PNG.
  async function fillHere(dilate) {
    const image = ui.photo.getContext("2d").getImageData(0, 0, state.width, state.height);
    const paint = ui.mask.getContext("2d").getImageData(0, 0, state.width, state.height).data;
    const hole = new Uint8Array(state.width * state.height);
    for (let i = 0; i < hole.length; i++) hole[i] = paint[i * 4 + 3] >= HOLE_ALPHA ? 1 : 0;
    const filled = await worker.fill(image, hole, dilate, (text) => setStatus(text, "busy"));
    const canvas = document.createElement("canvas");
    canvas.width = state.width;
    canvas.height = state.height;
    canvas.getContext("2d").putImageData(filled, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  // ---------- the model in a Web Worker (browser engine) ----------
  const worker = {
    thread: null, next: 1, pending: new Map(), ready: null,
    start() {
      if (this.thread) return this.thread;
      this.thread = new Worker("static/worker.js", { type: "module" });
      this.thread.onmessage = (event) => this.receive(event.data);
      this.thread.onerror = (event) => this.failAll(new Error(event.message || "the model could not start"));
      return this.thread;
    },
    receive(data) {
      if (data.kind === "download") return showDownload(data.loaded, data.total);
      if (data.kind === "ready" || data.kind === "failed") return this.loaded(data);
      const job = this.pending.get(data.id);
      if (!job) return;
      if (data.kind === "progress") return job.progress(data.text);
      this.pending.delete(data.id);
      if (data.kind === "done") job.resolve(new ImageData(new Uint8ClampedArray(data.rgba), job.width, job.height));
      else job.reject(new Error(data.message));
    },
    // The engine, loaded once: Promise of its info (worker.js "ready").
    load() {
      if (!this.ready) {
        this.ready = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
        this.start().postMessage({ kind: "load", prefer: PREFER });
      }
      return this.ready;
    },
    loaded(data) {
      showDownload(0, 0);
      if (data.kind === "ready") this.settle.resolve(data.info);
      else this.settle.reject(new Error(data.message));
    },
    failAll(err) {
      for (const job of this.pending.values()) job.reject(err);
      this.pending.clear();
      if (this.settle) this.settle.reject(err);
    },
    // image: ImageData; hole: Uint8Array (H*W), 1 = hole -> Promise<ImageData> (known pixels and alpha kept)
    fill(image, hole, dilate = 0, progress = () => {}) {
      this.load().catch(() => {}); // a fill waits for the engine; its failure comes back as this fill's error
      const id = this.next++;
      const rgba = image.data.slice().buffer;
      const holes = hole.slice().buffer;
      return new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject, progress, width: image.width, height: image.height });
        const message = { kind: "fill", id, rgba, hole: holes, width: image.width, height: image.height, dilate };
        this.start().postMessage(message, [rgba, holes]);
      });
    },
  };

  // The first visit's download (model and ONNX Runtime) in a progress bar; total 0 hides it.
  function showDownload(loaded, total) {
    ui.progress.hidden = !total || loaded >= total;
    if (!total) return;
    ui.progressBar.max = total;
    ui.progressBar.value = loaded;
    ui.progressText.textContent = `Model ${mib(loaded)} / ${mib(total)} MiB`;
  }

  function describeEngine(info) {
    const kind = info.provider === "webgpu" ? "WebGPU" : `WebAssembly, ${info.threads} thread${info.threads > 1 ? "s" : ""}`;
    return `the model runs in this browser (${kind})`;
  }

  async function startBrowserEngine() {
    try {
      const info = await worker.load();
      if (!state.width && !state.busy) setStatus(`Open a photo to begin. It stays on this computer: ${describeEngine(info)}.`);
    } catch (err) {
      setStatus(`The model could not load in this browser: ${err.message}`, "error");
    }
  }

  // window.pconv.inpaint: hole white (grey > 127) = hole, or, where the hole image has transparency, alpha > 127.
  function holeFromImageData(holeImage) {
    const px = holeImage.data;
    const hole = new Uint8Array(holeImage.width * holeImage.height);
    let transparent = false;
    for (let i = 3; i < px.length; i += 4) if (px[i] < 255) { transparent = true; break; }
    for (let i = 0; i < hole.length; i++) {
      const grey = (299 * px[i * 4] + 587 * px[i * 4 + 1] + 114 * px[i * 4 + 2]) / 1000;
      hole[i] = (transparent ? px[i * 4 + 3] : grey) > 127 ? 1 : 0;
    }
    return hole;
  }

  async function inpaintImageData(image, holeImage, { dilate = 0 } = {}) {
    if (!(image instanceof ImageData) || !(holeImage instanceof ImageData)) {
      throw new TypeError("pconv.inpaint(image, hole) takes two ImageData objects");
    }
    if (image.width !== holeImage.width || image.height !== holeImage.height) {
      throw new RangeError(`the hole is ${holeImage.width}x${holeImage.height} but the image is ${image.width}x${image.height}`);
    }
    return worker.fill(image, holeFromImageData(holeImage), dilate);
  }

  function fileExt(file) {
    const match = /\.[A-Za-z0-9]+$/.exec(file.name || "");
    return match ? match[0] : ".png";
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    } catch (err) { /* not JSON */ }
    return `HTTP ${response.status}`;
  }

  // ---------- result, compare, download ----------
  function setResult(blob) {
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.result = blob;
    state.resultUrl = blob ? URL.createObjectURL(blob) : null;
    ui.download.href = state.resultUrl || "#";
    ui.download.download = `${state.name}-inpainted.png`;
    ui.resultSection.hidden = !blob;
    ui.before.hidden = ui.divider.hidden = !blob;
    if (blob) setCompare(Number(ui.compare.value));
    refreshButtons();
  }

  // The divider sits at `percent` of the width: the original shows left of it, the result right of it.
  function setCompare(percent) {
    const right = 100 - percent;
    ui.before.style.clipPath = `inset(0 ${right}% 0 0)`;
    ui.divider.style.left = `${percent}%`;
  }

  async function revert() {
    if (!state.original || state.busy) return;
    const img = await loadImage(state.original);
    ui.photo.getContext("2d").drawImage(img, 0, 0);
    state.source = state.original;
    setResult(null);
    setStatus("Back to the original photo.");
  }

  // ---------- keyboard ----------
  function onKeyDown(event) {
    if (event.target instanceof HTMLInputElement && event.target.type === "number") return;
    const key = event.key.toLowerCase();
    const mod = event.ctrlKey || event.metaKey;
    if (mod && key === "z") { event.preventDefault(); event.shiftKey ? redo() : undo(); }
    else if (mod && key === "y") { event.preventDefault(); redo(); }
    else if (mod && key === "enter") { event.preventDefault(); runInpaint(); }
    else if (mod) return;
    else if (key === "[") setBrushSize(brushSize() / 1.2);
    else if (key === "]") setBrushSize(brushSize() * 1.2);
    else if (key === "b") setTool("brush");
    else if (key === "e") setTool("eraser");
    else if (key === "o" && state.result) setCompare(100); // while held: the original everywhere
  }

  function onKeyUp(event) {
    if (event.key.toLowerCase() === "o" && state.result) setCompare(Number(ui.compare.value));
  }

  // ---------- wiring ----------
  function bind() {
    ui.fileInput.addEventListener("change", () => { openPhoto(ui.fileInput.files[0]); ui.fileInput.value = ""; });
    ui.maskInput.addEventListener("change", () => { uploadMask(ui.maskInput.files[0]); ui.maskInput.value = ""; });
    ui.brush.addEventListener("click", () => setTool("brush"));
    ui.eraser.addEventListener("click", () => setTool("eraser"));
    ui.size.addEventListener("input", () => setBrushSize(brushSize()));
    ui.undo.addEventListener("click", undo);
    ui.redo.addEventListener("click", redo);
    ui.clear.addEventListener("click", clearMask);
    ui.run.addEventListener("click", runInpaint);
    ui.revert.addEventListener("click", revert);
    ui.compare.addEventListener("input", () => setCompare(Number(ui.compare.value)));
    ui.mask.addEventListener("pointerdown", onPointerDown);
    ui.mask.addEventListener("pointermove", onPointerMove);
    ui.mask.addEventListener("pointerup", onPointerUp);
    ui.mask.addEventListener("pointercancel", onPointerUp);
    ui.mask.addEventListener("pointerenter", moveCursor);
    ui.mask.addEventListener("pointerleave", () => { ui.cursor.hidden = true; });
    window.addEventListener("keydown", onKeyDown);
    window.addEventListener("keyup", onKeyUp);
    window.addEventListener("resize", layout);
    bindDrop();
  }

  function bindDrop() {
    const stop = (event) => { event.preventDefault(); event.stopPropagation(); };
    for (const type of ["dragenter", "dragover"]) {
      ui.stage.addEventListener(type, (e) => { stop(e); ui.stage.classList.add("dragging"); });
    }
    ui.stage.addEventListener("dragleave", (e) => { stop(e); ui.stage.classList.remove("dragging"); });
    ui.stage.addEventListener("drop", (e) => {
      stop(e);
      ui.stage.classList.remove("dragging");
      const file = e.dataTransfer && e.dataTransfer.files[0];
      if (file) openPhoto(file);
    });
    window.addEventListener("dragover", (e) => e.preventDefault()); // a miss must not navigate away
    window.addEventListener("drop", (e) => e.preventDefault());
  }

  async function fetchLimits() {
    try {
      const response = await fetch("/health");
      if (response.ok) state.limits = await response.json();
    } catch (err) {
      setStatus("The pconv server does not answer; is `pconv serve` running?", "error");
    }
    if (state.limits && state.limits.browser_fill) offerBrowserEngine();
    document.body.dataset.server = state.limits ? "ready" : "absent"; // the engine choice is settled
  }

  // `pconv serve`'s page: "Fill on: the server | this computer"; the engine loads when first chosen.
  function offerBrowserEngine() {
    ui.engineChoice.hidden = false;
    const choose = () => {
      state.engine = ui.engineBrowser.checked ? "browser" : "server";
      $("local-note").hidden = state.engine !== "browser";
      if (state.engine === "browser" && !state.busy) {
        setStatus("Fill on this computer: the photo is never uploaded.");
        startBrowserEngine();
      }
    };
    ui.engineBrowser.addEventListener("change", choose);
    ui.engineServer.addEventListener("change", choose);
    window.pconv = { inpaint: inpaintImageData, ready: () => worker.load(), engine: "browser" };
  }

  // A static host sends no COOP/COEP headers: register sw.js, which adds them, and reload once so the page is
  // cross-origin isolated (WebAssembly threads). Resolves when the page goes on as it is; never while it reloads.
  async function isolate() {
    const once = "pconv-isolation-reload";
    if (self.crossOriginIsolated) return sessionStorage.removeItem(once);
    if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
    try {
      await navigator.serviceWorker.register("sw.js");
      await navigator.serviceWorker.ready;
    } catch (err) {
      return; // no service worker here: one WebAssembly thread
    }
    if (sessionStorage.getItem(once)) return; // reloaded already and still not isolated: go on as is
    sessionStorage.setItem(once, "1");
    location.reload();
    await new Promise(() => {});
  }

  async function setUpTryPage() {
    $("local-note").hidden = false;
    const docs = $("docs-link");
    docs.href = "../";
    docs.textContent = "Documentation";
    docs.removeAttribute("target");
    setStatus("Open a photo to begin. It stays on this computer: the model runs in this browser.");
    await isolate();
    window.pconv = { inpaint: inpaintImageData, ready: () => worker.load(), engine: "browser" };
    startBrowserEngine(); // download while the photo is chosen and painted
  }

  bind();
  setBrushSize(brushSize());
  refreshButtons();
  if (BROWSER_ONLY) setUpTryPage();
  else fetchLimits();
})();
