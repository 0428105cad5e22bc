"""``pconv serve``: the web editor and the HTTP API (``pconv.server``) on one local port."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from pconv.commands._options import add_backend, add_test_time_averages, model_file

HELP = "Start the web editor and HTTP API (POST /api/v1/inpaint, docs at /docs) on http://127.0.0.1:8080."

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 opens it to your network)",
    )
    parser.add_argument("--port", type=int, default=8080, help="port (default: %(default)s; 0 picks a free one)")
    parser.add_argument(
        "--weights", type=Path, default=None, help="safetensors weights (default: the model shipped with pconv)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available, else cpu)")
    add_backend(parser)
    add_test_time_averages(parser)
    parser.add_argument("--max-upload-mb", type=float, default=40.0, help="largest request (default: %(default)s MiB)")
    parser.add_argument("--max-concurrency", type=int, default=1, help="inferences at once (default: %(default)s)")
    parser.add_argument(
        "--max-queue", type=int, default=8, help="requests waiting for a slot before 503 (default: %(default)s)"
    )
    parser.add_argument(
        "--browser-runtime",
        type=Path,
        default=None,
        help="onnxruntime-web's dist folder, for the page's 'fill on this computer' (the photo is never uploaded); "
        "default: web/node_modules/onnxruntime-web/dist of a pconv checkout, when there; without it the page fills "
        "on the server only",
    )


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from pconv.server import create_app
    except ImportError as exc:
        raise RuntimeError(
            f"pconv serve needs the serve extra ({exc.name} is missing): pip install 'pconv[serve]'"
        ) from None
    from pconv.inference import Inpainter

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0..65535, got {args.port}")
    inpainter = Inpainter(
        model_file(args),
        backend=args.backend,
        device=args.device,
        flip_average=args.flip_average,
        shift_average=args.shift_average,
        smooth=args.smooth,
    )
    browser_files = _browser_files(args)
    app = create_app(
        inpainter,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        browser_files=browser_files,
    )
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    print(
        f"pconv serve: web editor at http://{url_host}:{port}/ , API docs at http://{url_host}:{port}/docs", flush=True
    )
    if args.host not in LOOPBACK:
        print(f"pconv serve: listening on {args.host}: anyone who can reach this machine can use it", flush=True)
    if browser_files is None:
        print("pconv serve: the page fills on the server only (see --browser-runtime)", flush=True)
    print("pconv serve: press Ctrl+C to stop", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])
    return 0


def _browser_files(args: argparse.Namespace) -> dict[str, Path] | None:
    """What the page's in-browser fill loads (``create_app``'s ``browser_files``): ONNX Runtime Web from
    ``--browser-runtime`` (or this checkout's ``web/node_modules``) and the server's fill graph, or None when either
    is missing (the page then fills on the server only). The graph is the shipped one, or ``--onnx``'s; with
    ``--weights`` there is no graph for the browser."""
    from pconv.inference import default_onnx_path
    from pconv.web_engine import checkout_runtime, runtime_files

    model = model_file(args)
    graph = default_onnx_path() if model is None else model if model.suffix == ".onnx" else None
    dist = args.browser_runtime or checkout_runtime()
    if args.browser_runtime is not None and not args.browser_runtime.is_dir():
        raise ValueError(f"--browser-runtime {args.browser_runtime} is not a folder: pass onnxruntime-web/dist")
    if dist is None or graph is None or not graph.is_file():
        return None
    return {**runtime_files(dist), graph.name: graph}


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket, so a taken port is a one-line error instead of a server log and exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"--host {host!r} is not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or stop what uses it"
        ) from None
    sock.listen(128)
    return sock
