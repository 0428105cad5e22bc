// pconv's fill for the browser: the same plan as Python's pconv.inference.Inpainter around one ONNX graph.
//
// The graph (pconv_default.onnx, written by `pconv export-onnx`) is the whole fill for an image that fits: uint8
// image (1, H, W, 3) and hole_mask (1, H, W) (> 127 = hole, white = hole) in, filled uint8 (1, H, W, 3) out, the
// flip and shift averages and the compositing inside. What a graph does not do well lives here, written after
// pconv/inference.py: growing the hole (dilate_hole), windows around the holes of a large photo (plan_windows),
// and resizing a window longer than MAX_SIDE (resize_area down, resize_bicubic back up). No DOM: runs in a Worker.
//
// Pixel buffers: rgba is a Uint8ClampedArray (H * W * 4) as in ImageData; hole is a Uint8Array (H * W), 1 = hole.

export const MAX_SIDE = 1024; // pconv.inference.DEFAULT_MAX_SIDE: longer than this, a photo is filled by windows
export const MARGIN = 128; // pconv.inference.DEFAULT_MARGIN: context pixels around each hole region
const CELL = 32; // hole regions are found on a grid of 32 px cells
const CUBIC_A = -0.75; // the bicubic kernel's parameter (PyTorch's, OpenCV's)
const f32 = Math.fround;

// Round half to even, as numpy's rint and ONNX Round.
function rint(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Grow the hole by `pixels` in every direction (a (2p+1)² square), as dilate_hole. Returns a new array.
export function dilateHole(hole, height, width, pixels) {
  if (pixels <= 0) return hole;
  const rows = new Uint8Array(hole.length);
  for (let y = 0; y < height; y++) runningAny(hole, rows, y * width, 1, width, pixels);
  const out = new Uint8Array(hole.length);
  for (let x = 0; x < width; x++) runningAny(rows, out, x, width, height, pixels);
  return out;
}

function runningAny(src, dst, start, stride, n, p) {
  const sums = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) sums[i + 1] = sums[i] + (src[start + i * stride] ? 1 : 0);
  for (let i = 0; i < n; i++) {
    const hi = Math.min(i + p + 1, n);
    const lo = Math.max(i - p, 0);
    dst[start + i * stride] = sums[hi] > sums[lo] ? 1 : 0;
  }
}

// Windows {top, left, bottom, right} (end exclusive) that together hold every hole pixel, as plan_windows.
export function planWindows(hole, height, width, margin = MARGIN, minSide = MAX_SIDE / 2) {
  const hc = Math.ceil(height / CELL);
  const wc = Math.ceil(width / CELL);
  const grid = new Uint8Array(hc * wc);
  for (let y = 0; y < height; y++) {
    const row = ((y / CELL) | 0) * wc;
    for (let x = 0; x < width; x++) if (hole[y * width + x]) grid[row + ((x / CELL) | 0)] = 1;
  }
  const seen = new Uint8Array(hc * wc);
  const windows = [];
  for (let start = 0; start < grid.length; start++) {
    if (!grid[start] || seen[start]) continue;
    seen[start] = 1;
    const stack = [start];
    let [top, left, bottom, right] = [hc, wc, 0, 0];
    while (stack.length) {
      const cell = stack.pop();
      const cy = (cell / wc) | 0;
      const cx = cell % wc;
      [top, left, bottom, right] = [Math.min(top, cy), Math.min(left, cx), Math.max(bottom, cy + 1), Math.max(right, cx + 1)];
      for (let ny = Math.max(cy - 1, 0); ny < Math.min(cy + 2, hc); ny++) {
        for (let nx = Math.max(cx - 1, 0); nx < Math.min(cx + 2, wc); nx++) {
          const next = ny * wc + nx;
          if (grid[next] && !seen[next]) { seen[next] = 1; stack.push(next); }
        }
      }
    }
    const [y0, y1] = expand(top * CELL, Math.min(bottom * CELL, height), margin, minSide, height);
    const [x0, x1] = expand(left * CELL, Math.min(right * CELL, width), margin, minSide, width);
    windows.push({ top: y0, left: x0, bottom: y1, right: x1 });
  }
  return mergeOverlapping(windows);
}

function expand(start, end, margin, minLen, limit) {
  [start, end] = [start - margin, end + margin];
  const short = minLen - (end - start);
  if (short > 0) [start, end] = [start - Math.floor(short / 2), end + short - Math.floor(short / 2)];
  if (start < 0) [start, end] = [0, end - start];
  if (end > limit) [start, end] = [start - (end - limit), limit];
  return [Math.max(start, 0), end];
}

function mergeOverlapping(windows) {
  const merged = windows.slice();
  const overlaps = (a, b) => a.top < b.bottom && b.top < a.bottom && a.left < b.right && b.left < a.right;
  for (let changed = true; changed;) {
    changed = false;
    outer: for (let i = 0; i < merged.length; i++) {
      for (let j = i + 1; j < merged.length; j++) {
        if (overlaps(merged[i], merged[j])) {
          const [a, b] = [merged[i], merged.splice(j, 1)[0]];
          merged[i] = {
            top: Math.min(a.top, b.top), left: Math.min(a.left, b.left),
            bottom: Math.max(a.bottom, b.bottom), right: Math.max(a.right, b.right),
          };
          changed = true;
          break outer;
        }
      }
    }
  }
  return merged;
}

// Average the input cells each output pixel covers (resize_area) of planar float data (C, h, w) -> (C, H, W).
export function resizeArea(planes, channels, h, w, outH, outW) {
  const rows = new Float64Array(channels * outH * w);
  const [rLo, rHi] = cells(h, outH);
  const sums = new Float64Array(h + 1);
  for (let c = 0; c < channels; c++) {
    for (let x = 0; x < w; x++) {
      for (let y = 0; y < h; y++) sums[y + 1] = sums[y] + planes[(c * h + y) * w + x];
      for (let i = 0; i < outH; i++) rows[(c * outH + i) * w + x] = (sums[rHi[i]] - sums[rLo[i]]) / (rHi[i] - rLo[i]);
    }
  }
  const out = new Float32Array(channels * outH * outW);
  const [cLo, cHi] = cells(w, outW);
  const colSums = new Float64Array(w + 1);
  for (let r = 0; r < channels * outH; r++) {
    for (let x = 0; x < w; x++) colSums[x + 1] = colSums[x] + rows[r * w + x];
    for (let j = 0; j < outW; j++) out[r * outW + j] = (colSums[cHi[j]] - colSums[cLo[j]]) / (cHi[j] - cLo[j]);
  }
  return out;
}

function cells(nIn, nOut) {
  const lo = new Int32Array(nOut);
  const hi = new Int32Array(nOut);
  for (let i = 0; i < nOut; i++) {
    lo[i] = Math.floor((i * nIn) / nOut);
    hi[i] = Math.floor(((i + 1) * nIn + nOut - 1) / nOut);
  }
  return [lo, hi];
}

// Bicubic resize with half-pixel centres, edges repeated (resize_bicubic) of planar data (C, h, w) -> (C, H, W).
export function resizeBicubic(planes, channels, h, w, outH, outW) {
  const rows = resizeAxis(planes, channels, h, w, outH, true);
  return resizeAxis(rows, channels, outH, w, outW, false);
}

function resizeAxis(src, channels, h, w, nOut, alongRows) {
  const nIn = alongRows ? h : w;
  const taps = new Int32Array(nOut * 4);
  const weights = new Float32Array(nOut * 4);
  for (let i = 0; i < nOut; i++) {
    const pos = (i + 0.5) * (nIn / nOut) - 0.5;
    const first = Math.floor(pos);
    const t = f32(pos - first);
    const dists = [f32(t + 1), t, f32(1 - t), f32(2 - t)];
    for (let k = 0; k < 4; k++) {
      taps[i * 4 + k] = Math.min(Math.max(first + k - 1, 0), nIn - 1);
      weights[i * 4 + k] = cubic(dists[k]);
    }
  }
  const [outH, outW] = alongRows ? [nOut, w] : [h, nOut];
  const out = new Float32Array(channels * outH * outW);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        const i = alongRows ? y : x;
        let acc = 0;
        for (let k = 0; k < 4; k++) {
          const tap = taps[i * 4 + k];
          const v = alongRows ? src[(c * h + tap) * w + x] : src[(c * h + y) * w + tap];
          acc = f32(acc + f32(v * weights[i * 4 + k]));
        }
        out[(c * outH + y) * outW + x] = acc;
      }
    }
  }
  return out;
}

function cubic(d) {
  const a = CUBIC_A;
  if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
}

// A hole that leaves no known pixel: nothing to fill from (as pconv.inference's NoKnownPixelError).
export class NoKnownPixelError extends RangeError {}

// Fill the holes of an RGBA image with the graph.
//   runGraph(rgb Uint8Array (h*w*3), hole Uint8Array (h*w, 255 = hole), h, w) -> Promise<Uint8Array (h*w*3)>
//   onProgress({done, total}) after each window.
// Returns a new Uint8ClampedArray RGBA: alpha and every known pixel as in `rgba`.
// Throws NoKnownPixelError when the hole (grown by `dilate`) covers the whole image.
export async function fillImage(runGraph, rgba, hole, height, width, { dilate = 0, onProgress = () => {} } = {}) {
  const grown = dilateHole(hole, height, width, dilate);
  const out = new Uint8ClampedArray(rgba);
  let holes = 0;
  for (let i = 0; i < grown.length; i++) holes += grown[i] ? 1 : 0;
  if (!holes) return out;
  if (holes === grown.length) throw new NoKnownPixelError(wholeImageMessage(hole, dilate));
  const windows = Math.max(height, width) <= MAX_SIDE
    ? [{ top: 0, left: 0, bottom: height, right: width }]
    : planWindows(grown, height, width);
  onProgress({ done: 0, total: windows.length });
  for (let n = 0; n < windows.length; n++) {
    await fillWindow(runGraph, rgba, grown, width, windows[n], out);
    onProgress({ done: n + 1, total: windows.length });
  }
  return out;
}

function wholeImageMessage(hole, dilate) {
  if (dilate > 0 && hole.some((v) => !v)) {
    return `growing the hole by ${dilate} px covers the whole image: nothing is left to fill from; lower Grow hole`;
  }
  return "the mask covers the whole image: nothing is left to fill from; paint only what should go (in a mask file, white = hole)";
}

async function fillWindow(runGraph, rgba, hole, width, win, out) {
  const h = win.bottom - win.top;
  const w = win.right - win.left;
  const rgb = new Uint8Array(h * w * 3);
  const crop = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const src = (win.top + y) * width + win.left + x;
      for (let c = 0; c < 3; c++) rgb[(y * w + x) * 3 + c] = rgba[src * 4 + c];
      crop[y * w + x] = hole[src] ? 255 : 0;
    }
  }
  const scale = MAX_SIDE / Math.max(h, w);
  let pick; // (y, x, c) -> the fill's 0..255 value at a hole pixel of the window
  if (scale >= 1) {
    const filled = await runGraph(rgb, crop, h, w);
    pick = (y, x, c) => filled[(y * w + x) * 3 + c];
  } else {
    const [sh, sw] = [Math.max(1, Math.round(h * scale)), Math.max(1, Math.round(w * scale))];
    const planes = new Float32Array(3 * h * w);
    const holePlane = new Float32Array(h * w);
    for (let i = 0; i < h * w; i++) {
      for (let c = 0; c < 3; c++) planes[c * h * w + i] = f32(rgb[i * 3 + c] / 255);
      holePlane[i] = crop[i] ? 1 : 0;
    }
    const small = resizeArea(planes, 3, h, w, sh, sw);
    const smallHole = resizeArea(holePlane, 1, h, w, sh, sw);
    const smallRgb = new Uint8Array(sh * sw * 3);
    const smallMask = new Uint8Array(sh * sw);
    for (let i = 0; i < sh * sw; i++) {
      for (let c = 0; c < 3; c++) smallRgb[i * 3 + c] = rint(f32(Math.min(Math.max(small[c * sh * sw + i], 0), 1) * 255));
      smallMask[i] = smallHole[i] > 0 ? 255 : 0;
    }
    const filled = await runGraph(smallRgb, smallMask, sh, sw);
    const filledPlanes = new Float32Array(3 * sh * sw);
    for (let i = 0; i < sh * sw; i++) for (let c = 0; c < 3; c++) filledPlanes[c * sh * sw + i] = f32(filled[i * 3 + c] / 255);
    const big = resizeBicubic(filledPlanes, 3, sh, sw, h, w);
    pick = (y, x, c) => rint(f32(Math.min(Math.max(big[c * h * w + y * w + x], 0), 1) * 255));
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!crop[y * w + x]) continue;
      const dst = ((win.top + y) * width + win.left + x) * 4;
      for (let c = 0; c < 3; c++) out[dst + c] = pick(y, x, c);
    }
  }
}
