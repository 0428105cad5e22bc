// pconv Try it page: a service worker that makes the page cross-origin isolated on a plain static host.
// WebAssembly threads need SharedArrayBuffer, which browsers give only to a page served with
// Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp. A static host (GitHub
// Pages, `python -m http.server`) sends neither, so this worker adds them to every response of the page's own
// origin within its scope (the page's folder). Nothing else: it caches nothing (the model's worker keeps its files in
// Cache Storage itself) and leaves requests to other origins alone. The page registers it and reloads once
// (app.js, isolate()); `pconv serve` sends the headers itself and needs no service worker.
"use strict";

const ISOLATION = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) return;
  if (request.cache === "only-if-cached" && request.mode !== "same-origin") return; // a devtools quirk
  event.respondWith(withIsolation(request));
});

async function withIsolation(request) {
  const response = await fetch(request);
  if (response.type === "opaqueredirect" || response.status === 0) return response; // nothing to add headers to
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION)) headers.set(name, value);
  return new Response(NULL_BODY.has(response.status) ? null : response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}
