// pconv's model in a Web Worker: ONNX Runtime Web runs the fill graph, fill.js plans the windows.
// Everything it loads comes from its own folder, as listed in engine.json (pconv.web_engine.manifest): the fill
// graph and one ONNX Runtime Web build, WebGPU where the browser has a GPU (and the graph runs there), else
// WebAssembly (as many threads as the CPU has, up to MAX_THREADS, when the page is cross-origin isolated; one
// otherwise); when WebGPU fails to load or run the graph, WebAssembly takes over by itself. The graph and the
// WebAssembly are kept in Cache Storage under their SHA-256, so a later visit downloads neither. The photo never
// leaves this worker.
//
// Messages in:  {kind: "load", prefer: "auto" | "webgpu" | "wasm"}   (optional: a fill loads with "auto")
//               {kind: "fill", id, rgba: ArrayBuffer (H*W*4), hole: ArrayBuffer (H*W, 1 = hole), width, height, dilate}
// Messages out: {kind: "download", loaded, total}                    bytes of the first visit's download
//               {kind: "ready", info: {provider, threads, isolated, downloaded (bytes), seconds: {download, session},
//                                      webgpuError (why WebGPU was left for WebAssembly, or null)}}
//               {kind: "failed", message}
//               {id, kind: "progress", text}, {id, kind: "done", rgba: ArrayBuffer, seconds}, {id, kind: "error", message}
import { NoKnownPixelError, fillImage } from "./fill.js";

// ONNX Runtime's graphOptimizationLevel ("disabled" | "basic" | "extended" | "all"). The shipped graph has the
// portable (basic) optimisations done at export; "all" would look for this runtime's own fusions at load, but the
// WebAssembly build has no blocked-layout convolutions and the graph only two fusable ones, so it found nothing
// that paid and took a second of the session's set-up (2.46 -> 1.52 s at 512², benchmarks/bench_browser.py);
// the fill's bytes are the same either way (and Python's, tested).
const GRAPH_OPTIMIZATION = "disabled";
const MAX_THREADS = 4; // more threads than this gain little on this graph and each costs a WebAssembly instance
const CACHE_NAME = "pconv-engine";
const here = new URL("./", import.meta.url);

let engine = null; // Promise of {ort, sessions, manifest, info}

function load(prefer = "auto") {
  engine ??= start(prefer);
  return engine;
}

async function start(prefer) {
  const manifest = await (await fetch(new URL("engine.json", here), { cache: "no-cache" })).json();
  const provider = await pickProvider(prefer, manifest);
  if (provider !== "webgpu") return open(manifest, provider);
  try {
    return await open(manifest, provider);
  } catch (err) {
    return open(manifest, "wasm", err);
  }
}

// After WebGPU failed (to load the graph, or to run it): the WebAssembly build, for this and every later fill.
function fallBack(failed, err) {
  engine = open(failed.manifest, "wasm", err, failed.info.downloaded);
  return engine;
}

// One ONNX Runtime Web build with the graphs loaded: {ort, sessions, manifest, info}.
async function open(manifest, provider, webgpuError = null, downloadedBefore = 0) {
  const t0 = performance.now();
  const [bundle, wasm] = manifest.engines[provider];
  const [wasmBytes, ...rest] = await fetchAll(manifest, [wasm, ...manifest.models]);
  const downloaded = rest.pop();
  const t1 = performance.now();
  const ort = await import(new URL(bundle, here).href);
  const threads = self.crossOriginIsolated ? Math.min(MAX_THREADS, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmBinary = wasmBytes;
  ort.env.logLevel = "error";
  const options = {
    executionProviders: provider === "webgpu" ? ["webgpu", "wasm"] : ["wasm"],
    graphOptimizationLevel: GRAPH_OPTIMIZATION,
    logSeverityLevel: 3, // errors only, as in Python: no console warnings about the graph's optional inputs
    // Idle threads sleep instead of spinning, as in Python: on a busy CPU spinning threads slow the working ones.
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
  // One session per graph, run in turn (engine.json's "models": the fill whole, or its two parts, which set up in
  // about half the time of one graph).
  const sessions = [];
  for (const bytes of rest) sessions.push(await ort.InferenceSession.create(bytes, options));
  const info = {
    provider, threads, isolated: self.crossOriginIsolated, downloaded: downloadedBefore + downloaded,
    seconds: { download: (t1 - t0) / 1000, session: (performance.now() - t1) / 1000 },
    webgpuError: webgpuError && String(webgpuError.message || webgpuError),
  };
  return { ort, sessions, manifest, info };
}

// "webgpu" where the browser has a GPU adapter and the graph runs there (engine.json), else "wasm". Asked for
// "webgpu" (?ep=webgpu), it tries WebGPU on any adapter, software ones too, and falls back when that fails.
async function pickProvider(prefer, manifest) {
  if (prefer === "wasm" || !manifest.engines.webgpu || !self.navigator.gpu) return "wasm";
  if (prefer !== "webgpu" && !manifest.graph_runs_on_webgpu) return "wasm";
  try {
    const adapter = await navigator.gpu.requestAdapter();
    const software = adapter && (adapter.info ? adapter.info.isFallbackAdapter : adapter.isFallbackAdapter);
    if (adapter && (prefer === "webgpu" || !software)) return "webgpu"; // software WebGPU is slower than WebAssembly
  } catch (err) {
    // no usable WebGPU here
  }
  return "wasm";
}

// The files' bytes, each from Cache Storage when there, else downloaded (with progress) and stored there.
// Returns [...bytes of each name, bytes downloaded].
async function fetchAll(manifest, names) {
  const cache = await self.caches?.open(CACHE_NAME).catch(() => null); // none (e.g. no secure context): download
  const keys = names.map((name) => `${new URL(name, here).href}?sha256=${manifest.files[name].sha256}`);
  const hits = await Promise.all(keys.map((key) => (cache ? cache.match(key) : undefined)));
  const total = names.reduce((sum, name, i) => sum + (hits[i] ? 0 : manifest.files[name].bytes), 0);
  let loaded = 0;
  let shown = 0;
  const onBytes = (n) => {
    loaded += n;
    if (loaded - shown >= 1 << 18 || loaded === total) {
      shown = loaded;
      self.postMessage({ kind: "download", loaded, total });
    }
  };
  const bytes = await Promise.all(names.map(async (name, i) => {
    if (hits[i]) return new Uint8Array(await hits[i].arrayBuffer());
    const data = await download(new URL(name, here), manifest.files[name].bytes, onBytes);
    if (cache) await store(cache, keys[i], data);
    return data;
  }));
  return [...bytes, total];
}

async function download(url, size, onBytes) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status}`);
  const data = new Uint8Array(size);
  let at = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > size) throw new Error(`${url.pathname} is larger than engine.json says; reload the page`);
    data.set(value, at);
    at += value.length;
    onBytes(value.length);
  }
  if (at !== size) throw new Error(`${url.pathname}: ${at} of ${size} bytes arrived; reload the page`);
  return data;
}

// Keep one version of each file: drop the older ones of the same URL, then store this one.
async function store(cache, key, data) {
  const url = key.slice(0, key.indexOf("?"));
  try {
    for (const old of await cache.keys()) if (old.url.startsWith(url + "?") && old.url !== key) await cache.delete(old);
    await cache.put(key, new Response(data));
  } catch (err) {
    // storage full or refused: this visit works, the next one downloads again
  }
}

// The sessions in turn: each takes the inputs it names from the photo, the hole and what the ones before it gave.
async function runGraph(sessions, ort, rgb, hole, height, width) {
  const values = {
    image: new ort.Tensor("uint8", rgb, [1, height, width, 3]),
    hole_mask: new ort.Tensor("uint8", hole, [1, height, width]),
  };
  for (const session of sessions) {
    const feeds = {};
    for (const name of session.inputNames) if (name in values) feeds[name] = values[name];
    Object.assign(values, await session.run(feeds));
  }
  return values.filled.data; // (1, H, W, 3) uint8
}

async function fill({ id, rgba, hole, width, height, dilate }) {
  const started = performance.now();
  const onProgress = ({ done, total }) => {
    const text = total > 1 ? `Inpainting region ${Math.min(done + 1, total)} of ${total}…` : "Inpainting…";
    if (done < total) self.postMessage({ id, kind: "progress", text, done, total });
  };
  const fillWith = ({ ort, sessions }) => {
    const run = (rgb, mask, h, w) => runGraph(sessions, ort, rgb, mask, h, w);
    return fillImage(run, new Uint8ClampedArray(rgba), new Uint8Array(hole), height, width, { dilate, onProgress });
  };
  try {
    const loaded = await load();
    let out;
    try {
      out = await fillWith(loaded);
    } catch (err) {
      if (loaded.info.provider !== "webgpu" || err instanceof NoKnownPixelError) throw err;
      out = await fillWith(await fallBack(loaded, err)); // WebGPU loaded the graph but could not run it
    }
    const seconds = (performance.now() - started) / 1000;
    self.postMessage({ id, kind: "done", rgba: out.buffer, seconds }, [out.buffer]);
  } catch (err) {
    self.postMessage({ id, kind: "error", message: String((err && err.message) || err) });
  }
}

self.onmessage = (event) => {
  const message = event.data;
  if (message.kind === "fill") return fill(message);
  if (message.kind === "load") {
    load(message.prefer).then(
      ({ info }) => self.postMessage({ kind: "ready", info }),
      (err) => self.postMessage({ kind: "failed", message: String((err && err.message) || err) }),
    );
  }
};
