// pconv's model in a Web Worker: ONNX Runtime Web (WebAssembly) runs the fill graph, fill.js plans the windows.
// Everything it loads comes from its own folder: ort.wasm.bundle.min.mjs, ort-wasm-simd-threaded.wasm and
// pconv_default.onnx, copied there by the docs build (tools/build_try.py). The photo never leaves this worker.
//
// Messages in:  {id, rgba: ArrayBuffer (H*W*4), hole: ArrayBuffer (H*W, 1 = hole), width, height, dilate}
// Messages out: {id, kind: "progress", text}, {id, kind: "done", rgba: ArrayBuffer, seconds}, {id, kind: "error", message}
import * as ort from "./ort.wasm.bundle.min.mjs";
import { fillImage } from "./fill.js";

const here = new URL("./", import.meta.url).href;
// The .wasm next to this file, never a CDN (the bundle carries its own JavaScript glue).
ort.env.wasm.wasmPaths = { wasm: new URL("ort-wasm-simd-threaded.wasm", here).href };
// Several threads need a cross-origin isolated page (SharedArrayBuffer); a plain static server gives one.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

let session = null;

async function loadSession(id) {
  if (session) return session;
  post({ id, kind: "progress", text: "Loading the model (first run only)…" });
  session = await ort.InferenceSession.create(new URL("pconv_default.onnx", here).href, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  return session;
}

async function runGraph(rgb, hole, height, width) {
  const feeds = {
    image: new ort.Tensor("uint8", rgb, [1, height, width, 3]),
    hole_mask: new ort.Tensor("uint8", hole, [1, height, width]),
  };
  const result = await session.run(feeds);
  return result.filled.data; // (1, H, W, 3) uint8
}

function post(message, transfer = []) {
  self.postMessage(message, transfer);
}

self.onmessage = async (event) => {
  const { id, rgba, hole, width, height, dilate } = event.data;
  const started = performance.now();
  try {
    await loadSession(id);
    const onProgress = ({ done, total }) => {
      const text = total > 1 ? `Inpainting region ${Math.min(done + 1, total)} of ${total}…` : "Inpainting…";
      if (done < total) post({ id, kind: "progress", text, done, total });
    };
    const out = await fillImage(runGraph, new Uint8ClampedArray(rgba), new Uint8Array(hole), height, width, {
      dilate, onProgress,
    });
    post({ id, kind: "done", rgba: out.buffer, seconds: (performance.now() - started) / 1000 }, [out.buffer]);
  } catch (err) {
    post({ id, kind: "error", message: String((err && err.message) || err) });
  }
};
