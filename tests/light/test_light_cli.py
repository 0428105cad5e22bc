"""`pconv inpaint` and `pconv serve` on the light path: they fill a photo with no torch module ever imported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch_free import run_probe

from pconv.backends import installed
from pconv.inference import default_weights_path

CLI = "import sys\nfrom pconv.cli import main\nrc = main({argv!r})\nprint('rc', rc)\n"


def cli(argv: list[str], cwd: Path):
    return run_probe(CLI.format(argv=argv), cwd=cwd)


def test_inpaint_cli_fills_a_photo_without_importing_torch(tmp_path: Path, sample_files: tuple[Path, Path]) -> None:
    photo, mask = sample_files
    out = tmp_path / "filled.png"
    probe = cli(["inpaint", "--image", str(photo), "--mask", str(mask), "--output", str(out)], tmp_path)
    assert probe.returncode == 0 and "rc 0" in probe.stdout, probe.stderr
    assert probe.torch_modules == []
    before, after, hole = (np.asarray(Image.open(p)) for p in (photo, out, mask))
    assert np.array_equal(after[hole <= 127], before[hole <= 127])  # known pixels identical
    assert (after[hole > 127] != before[hole > 127]).any(axis=-1).mean() > 0.9


def test_serve_runs_the_editor_and_api_without_importing_torch(tmp_path: Path, sample_files: tuple[Path, Path]) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    photo, mask = sample_files
    code = f"""
import socket, threading, time
import httpx
from pconv.cli import main

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
threading.Thread(target=main, args=(["serve", "--port", str(port)],), daemon=True).start()
url = f"http://127.0.0.1:{{port}}"
with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
    for _ in range(600):
        try:
            client.get("/health")
            break
        except httpx.TransportError:
            time.sleep(0.1)
    editor = client.get("/")
    files = {{"image": open({str(photo)!r}, "rb"), "mask": open({str(mask)!r}, "rb")}}
    reply = client.post("/api/v1/inpaint", files=files, headers={{"Origin": url}})
open({str(tmp_path / "served.png")!r}, "wb").write(reply.content)
print("editor", editor.status_code, "<canvas" in editor.text or "<html" in editor.text.lower())
print("api", reply.status_code, reply.headers["content-type"])
"""
    probe = run_probe(code, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert "editor 200 True" in probe.stdout and "api 200 image/png" in probe.stdout, probe.stdout + probe.stderr
    assert probe.torch_modules == []
    before, served, hole = (np.asarray(Image.open(p).convert("RGB")) for p in (photo, tmp_path / "served.png", mask))
    hole = hole[..., 0] > 127
    assert served.shape == before.shape and np.array_equal(served[~hole], before[~hole])


def test_inpaint_help_lists_the_backends(tmp_path: Path) -> None:
    probe = cli(["inpaint", "--help"], tmp_path)
    assert "--backend {auto,torch,onnx}" in probe.stdout and probe.torch_modules == []


@pytest.mark.skipif(installed("torch"), reason="torch is installed here (run by make test-light)")
def test_backend_torch_without_torch_is_a_one_line_error(tmp_path: Path, sample_files: tuple[Path, Path]) -> None:
    photo, mask = sample_files
    args = ["inpaint", "--image", str(photo), "--mask", str(mask), "--output", str(tmp_path / "o.png")]
    probe = cli([*args, "--backend", "torch"], tmp_path)
    assert "rc 2" in probe.stdout
    assert probe.stderr.strip() == (
        "pconv inpaint: error: the torch backend needs the torch package, which is not installed: "
        "pip install 'pconv[torch]'"
    )
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--weights", str(default_weights_path()), "--backend", "onnx"], "pconv export-onnx --weights"),
        (["--weights", str(default_weights_path()), "--onnx", "m.onnx"], "not both"),
        (["--onnx", "missing.onnx"], "ONNX file not found: missing.onnx"),
    ],
)
def test_model_file_mistakes_are_one_line_errors(
    tmp_path: Path, sample_files: tuple[Path, Path], extra: list[str], message: str
) -> None:
    photo, mask = sample_files
    args = ["inpaint", "--image", str(photo), "--mask", str(mask), "--output", str(tmp_path / "o.png"), *extra]
    probe = cli(args, tmp_path)
    assert "rc 2" in probe.stdout
    assert probe.stderr.startswith("pconv inpaint: error: ") and message in probe.stderr
    assert len(probe.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(installed("torch"), reason="torch is installed here (run by make test-light)")
def test_a_torch_command_on_the_base_install_says_which_extra(tmp_path: Path) -> None:
    probe = cli(["bench", "--output-dir", "b"], tmp_path)
    assert "rc 2" in probe.stdout
    assert probe.stderr.strip() == (
        "pconv bench: error: this command needs torch, which is not installed: pip install 'pconv[torch]'"
    )


def test_missing_package_messages_name_the_extra() -> None:
    from pconv.cli import missing_package_message

    assert missing_package_message("torch.nn").endswith("pip install 'pconv[torch]'")
    assert missing_package_message("cv2").endswith("pip install 'pconv[eval]'")
    assert "yaml" in missing_package_message("yaml")
