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
    app = create_app(
        inpainter,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
    )
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    print(
        f"pconv serve: web editor at http://{url_host}:{port}/ , API docs at http://{url_host}:{port}/docs", flush=True
    )
    if args.host not in LOOPBACK:
        print(f"pconv serve: listening on {args.host}: anyone who can reach this machine can use it", flush=True)
    print("pconv serve: press Ctrl+C to stop", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[sock])
    return 0


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
