"""Where the Try it page's network passes spend their time: ONNX Runtime Web's WebAssembly against native ONNX
Runtime, node by node, on the same graph file.

Run (from the repository root, with the full venv; needs /usr/bin/chromium and npm or web/node_modules):
    python benchmarks/bench_browser_profile.py [--rounds 4] [--out benchmarks/RESULTS.md]

Builds the page as `bench_browser.py` does (tools/build_try.py, into a temporary folder) and, in that copy only,
turns on ONNX Runtime's profiler for the page's first graph (the four network passes as one call,
``pconv_default.passes.onnx``): ``enableProfiling`` at the session's creation and ``endProfiling()`` after
``--rounds`` fills. ONNX Runtime Web's WebAssembly build prints each node's run to the console as JSON, which the
benchmark reads. The same graph file then runs ``--rounds`` times in this process on native ONNX Runtime with the
same threads (2 here), profiled the same way, once with graph optimisation off (as the page loads it: the
operators the page runs) and once at ONNX Runtime's default level (what Python's fill runs, with this CPU's
blocked-layout convolutions). The photo and hole are bench_light_inference.py's (512x512). Per node: the median
over the rounds after the first (the first is the WebAssembly's warm-up). The tables: the time by operator type,
and the convolutions that take longest in the page with their multiply-adds and the rate each runtime reaches.
Its section of ``--out`` (key ``browser-profile``, ``benchmarks/_results.py``) is replaced or added.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tools"), str(ROOT / "tests")]
import build_try  # noqa: E402
from _results import write_section  # noqa: E402
from bench_light_inference import make_inputs  # noqa: E402
from browser import CHROMIUM, CHROMIUM_ARGS, PAGE_FILLS, serve_site  # noqa: E402

HEADING = "## Browser profile: the page's network passes, WebAssembly against native ONNX Runtime"
PASSES = "pconv_default.passes.onnx"
# The edits to the built copy of worker.js (never to the source): profile the first session, end it after the
# rounds, and let ONNX Runtime Web log (its profiler prints through the log).
CREATE = "  for (const bytes of rest) sessions.push(await ort.InferenceSession.create(bytes, options));\n"
PROFILED_CREATE = (
    "  for (const bytes of rest) sessions.push(await ort.InferenceSession.create(bytes,\n"
    "    sessions.length === 0 ? { ...options, enableProfiling: true } : options));\n"
)
RUN = "    Object.assign(values, await session.run(feeds));\n"
PROFILED_RUN = RUN + (
    "    if (session === sessions[0] && (self.pconvProfiledRuns = (self.pconvProfiledRuns || 0) + 1) === ROUNDS) "
    "session.endProfiling();\n"
)
LOG_LEVEL = ('ort.env.logLevel = "error";', 'ort.env.logLevel = "verbose";')


def profiled_worker(source: str, rounds: int) -> str:
    """``worker.js`` with the passes' session profiled for ``rounds`` runs (module docstring)."""
    for old in (CREATE, RUN, LOG_LEVEL[0]):
        if old not in source:
            raise SystemExit(f"bench_browser_profile: worker.js no longer holds {old.strip()!r}; update this script")
    source = source.replace(CREATE, PROFILED_CREATE, 1).replace(RUN, PROFILED_RUN.replace("ROUNDS", str(rounds)), 1)
    return source.replace(*LOG_LEVEL, 1)


def node_events(texts: list[str]) -> list[dict]:
    """ONNX Runtime's per-node profile events ("cat": "Node", "*_kernel_time") among console or file lines."""
    events = []
    for text in texts:
        line = text.strip().rstrip(",")
        if not line.startswith("{") or '"Node"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            events.append(event)
    return events


def per_node(events: list[dict]) -> dict[str, dict]:
    """Node name -> {op, shapes (inputs), out (first output's shape), ms: median over the runs after the first}."""
    runs: dict[str, list[float]] = collections.defaultdict(list)
    about: dict[str, dict] = {}
    for event in events:
        name = event["name"][: -len("_kernel_time")]
        runs[name].append(event["dur"] / 1000)
        shapes = [next(iter(s.values())) for s in event["args"].get("input_type_shape", [])]
        outputs = [next(iter(s.values())) for s in event["args"].get("output_type_shape", [])]
        about[name] = {"op": event["args"].get("op_name", "?"), "shapes": shapes, "out": outputs[0] if outputs else []}
    return {name: {**about[name], "ms": statistics.median(times[1:] or times)} for name, times in runs.items()}


def browser_profile(site: Path, rounds: int) -> dict[str, dict]:
    """The page's passes, profiled in headless Chromium (``rounds`` fills of the fixture photo)."""
    from playwright.sync_api import sync_playwright

    lines: list[str] = []
    with serve_site(site) as (base, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        page.set_default_timeout(600_000)
        page.on("console", lambda message: lines.append(message.text))
        page.goto(f"{base}/try/")
        page.wait_for_function("window.pconv && typeof window.pconv.ready === 'function'")
        page.evaluate("window.pconv.ready()")
        for _ in range(rounds):
            page.evaluate(PAGE_FILLS, [f"{base}/fixtures/photo.png", f"{base}/fixtures/mask.png", 1])
        page.wait_for_timeout(1000)  # the profile's last lines
        browser.close()
    nodes = per_node(node_events(lines))
    if not nodes:
        raise SystemExit("bench_browser_profile: the page printed no profile (ONNX Runtime Web's output changed?)")
    return nodes


def native_profile(graph: Path, photo: Path, mask: Path, rounds: int, *, optimize: bool, folder: Path) -> dict:
    """The same graph in native ONNX Runtime, 2 threads, profiled over ``rounds`` runs."""
    import onnxruntime as ort

    from pconv.backends import _options

    options = _options(ort, 2, optimize=optimize)
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / f"native_{int(optimize)}")
    session = ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])
    image = np.asarray(Image.open(photo).convert("RGB"))[None]
    hole = np.asarray(Image.open(mask).convert("L"))[None]
    feeds = {"image": image, "hole_mask": hole}
    feeds = {i.name: feeds[i.name] for i in session.get_inputs() if i.name in feeds}
    for _ in range(rounds):
        session.run(None, feeds)
    path = Path(session.end_profiling())
    return per_node(node_events([json.dumps(e) for e in json.loads(path.read_text())]))


def macs(node: dict) -> float:
    """Multiply-adds of a Conv node: each output value (N, O, H', W') sums weight (O, C/g, kh, kw)'s C/g*kh*kw."""
    _, per_group, kh, kw = node["shapes"][1]
    return float(np.prod(node["out"])) * per_group * kh * kw


def section(args: argparse.Namespace, web: dict, plain: dict, tuned: dict, started: str, loads: tuple) -> str:
    by_op: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
    for name, node in web.items():
        by_op[node["op"]][0] += node["ms"]
        by_op[node["op"]][1] += plain.get(name, {}).get("ms", 0.0)
    for node in tuned.values():  # the optimised graph's nodes have other names (fused, blocked layout)
        op = {"FusedConv": "Conv", "ReorderInput": "(layout reorders)", "ReorderOutput": "(layout reorders)"}
        by_op[op.get(node["op"], node["op"])][2] += node["ms"]
    totals = [sum(v[i] for v in by_op.values()) for i in range(3)]
    l0, l1 = loads
    lines = [
        HEADING,
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} logical CPUs; {started}; load average (1, 5, 15 min) "
        f"{l0[0]:.1f} {l0[1]:.1f} {l0[2]:.1f} at the start, {l1[0]:.1f} {l1[1]:.1f} {l1[2]:.1f} at the end; "
        f"Chromium headless (Debian, no GPU), ONNX Runtime Web {build_try.pinned_ort_version()} (WebAssembly, "
        "SIMD, 2 threads) against native ONNX Runtime (2 threads) on the same file, `pconv_default.passes.onnx` "
        "(the four passes of a 512x512 photo as one batch of four).",
        f"- Command: `python benchmarks/bench_browser_profile.py --rounds {args.rounds} --out benchmarks/RESULTS.md`; "
        f"{args.rounds} runs each, the median per node over the runs after the first; the profiler's own cost is "
        "in every column.",
        "",
        "| operator | page (WebAssembly), ms | native, optimisation off (the page's operators), ms | "
        "native, default optimisation (Python's fill), ms |",
        "|---|---:|---:|---:|",
    ]
    for op, (a, b, c) in sorted(by_op.items(), key=lambda kv: -kv[1][0])[:8]:
        lines.append(f"| {op} | {a:.1f} | {b:.1f} | {c:.1f} |")
    lines += [
        f"| **all nodes** | **{totals[0]:.1f}** | **{totals[1]:.1f}** | **{totals[2]:.1f}** |",
        "",
        "The convolutions that take longest in the page (batch of four; GMAC/s: multiply-adds per second):",
        "",
        "| node | input, weight | MMAC | page, ms | native (off), ms | page / native | page, GMAC/s | native, GMAC/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    convs = sorted((n for n in web.items() if n[1]["op"] == "Conv"), key=lambda kv: -kv[1]["ms"])
    for name, node in convs[:10]:
        native = plain.get(name, {}).get("ms", float("nan"))
        work = macs(node)
        lines.append(
            f"| `{name}` | {node['shapes'][0]}, {node['shapes'][1]} | {work / 1e6:.0f} | {node['ms']:.1f} | "
            f"{native:.1f} | {node['ms'] / native:.1f}× | {work / node['ms'] / 1e6:.0f} | {work / native / 1e6:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="runs of each (the first is left out)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the section into")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the first run is the warm-up)")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        out = build_try.build(site)
        worker = out / "static" / "worker.js"
        worker.write_text(profiled_worker(worker.read_text(encoding="utf-8"), args.rounds), encoding="utf-8")
        (site / "fixtures").mkdir()
        photo, mask = make_inputs(site / "fixtures")
        web = browser_profile(site, args.rounds)
        graph = out / "static" / PASSES
        plain = native_profile(graph, photo, mask, args.rounds, optimize=False, folder=Path(tmp))
        tuned = native_profile(graph, photo, mask, args.rounds, optimize=True, folder=Path(tmp))
    text = section(args, web, plain, tuned, started, (load, os.getloadavg()))
    print(text)
    if args.out is not None:
        write_section(args.out, "browser-profile", text)


if __name__ == "__main__":
    main()
