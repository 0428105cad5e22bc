"""Scale-out: `pconv inpaint` and `pconv evaluate` under torchrun (2 CPU ranks, gloo) give what one process gives;
a killed batch restarted with --skip-existing ends with an uninterrupted run's files; failures are reported once."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pconv.cli import main
from pconv.config import ModelConfig
from pconv.distributed import Group, Ranks, on_every_rank, rank_device, rank_threads, split_threads
from pconv.loader import FileWorkers
from pconv.model import PConvUNet, save_weights

SRC = Path(__file__).resolve().parents[1] / "src"
NVIDIA = "masks/nvidia_irregular_test"


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(2)
    return save_weights(PConvUNet(ModelConfig(depth=4, width=0.125)).eval(), tmp_path / "tiny.safetensors")


def photo(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def hole(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    top = 3 + seed % 11
    m[top : top + h // 3, 10 : 10 + w // 2] = 255
    return m


def torchrun(*args: str | Path, nproc: int = 2, timeout: float = 240, **popen: object) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node=N -m pconv ARGS`` on loopback (a free port), this checkout's sources."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    env.pop("PCONV_DEBUG", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "pconv"]
    return subprocess.Popen(
        [*cmd, *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def files_of(folder: Path) -> dict[str, bytes]:
    """Every entry of a folder, hidden ones included, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---- pconv.distributed and pconv.loader, in one process -------------------------------------------------------


def test_ranks_from_torchrun_environment_and_fixed_shares() -> None:
    assert Ranks.from_env({}) == Ranks(0, 1, 0, 1)
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    ranks = Ranks.from_env(env)
    assert ranks == Ranks(3, 4, 1, 2) and ranks.enabled and not ranks.is_main
    items = list(range(10))
    shares = [Ranks(r, 4).share(items) for r in range(4)]
    assert shares[3] == [3, 7] and sorted(sum(shares, [])) == items  # disjoint, complete
    with pytest.raises(ValueError, match="integers"):
        Ranks.from_env({"WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match="inconsistent"):
        Ranks.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_rank_device_picks_the_local_gpu_and_refuses_more_ranks_than_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device(None, Ranks(3, 4, 1, 2)) == "cuda:1" and rank_device("cuda", Ranks(2, 4, 0, 2)) == "cuda:0"
    assert rank_device("cuda:0", Ranks(1, 4, 1, 4)) == "cuda:0"  # several ranks on one GPU, when asked
    with pytest.raises(ValueError, match="4 processes on this node but only 2 GPU"):
        rank_device(None, Ranks(0, 4, 0, 4))


def test_rank_device_and_thread_split() -> None:
    single, two = Ranks(), Ranks(1, 2, 1, 2)
    assert rank_device("cpu", two) == "cpu" and rank_device("cuda:0", two) == "cuda:0"
    assert rank_device(None, single) is None  # a single process leaves the choice to the backend
    if not torch.cuda.is_available():
        assert rank_device(None, two) == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            rank_device("cuda", two)
    before = torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
        assert rank_threads(single) is None and rank_threads(single, 3) == 3 and rank_threads(two) == max(1, cores // 2)
        assert split_threads(two) == max(1, cores // 2) == torch.get_num_threads()
        assert split_threads(single, 1) == 1 == torch.get_num_threads()
        with pytest.raises(ValueError, match="at least 1"):
            split_threads(single, 0)
    finally:
        torch.set_num_threads(before)


class _FakeGroup(Group):
    """A group whose other ranks' set-up outcomes are given (one line each, None = fine)."""

    def __init__(self, rank: int, reasons: list[str | None]) -> None:
        super().__init__(Ranks(rank, len(reasons)))
        self.reasons = reasons

    def all_gather(self, obj: object) -> list:
        return [obj if r == self.ranks.rank else reason for r, reason in enumerate(self.reasons)]


def test_set_up_error_of_one_rank_is_raised_once_by_rank_0() -> None:
    assert on_every_rank(_FakeGroup(0, [None, None]), lambda: 7) == 7
    with pytest.raises(RuntimeError, match="^rank 1: out of GPU memory$"):
        on_every_rank(_FakeGroup(0, [None, "out of GPU memory"]), lambda: 7)
    assert on_every_rank(_FakeGroup(1, [None, None]), _raise) is None  # rank 1 failed: quiet, rank 0 tells

    with pytest.raises(ValueError, match="no images in x"):  # rank 0's own error, as raised
        on_every_rank(_FakeGroup(0, [None, "no images in x"]), _raise)


def _raise() -> None:
    raise ValueError("no images in x")


def test_file_workers_keep_order_and_bound_what_is_pending() -> None:
    loading: list[int] = []
    written: list[int] = []

    def load(i: int) -> int:
        loading.append(i)
        time.sleep(0.002 * (i % 3))  # out-of-order completion
        return i * i

    with FileWorkers(3, ahead=2, on_written=written.append) as files:
        got = []
        for value in files.prefetch(load, range(20)):
            assert len(loading) <= len(got) + 4  # at most `ahead` + 1 loaded beyond what was asked for (+1 racing)
            got.append(value)
            files.write(lambda v=value: v + 1)
            assert len(written) >= len(got) - 3  # write-behind is bounded too
        files.flush()
    assert got == [i * i for i in range(20)] and written == [i * i + 1 for i in range(20)]
    inline: list[int] = []
    with FileWorkers(0, on_written=inline.append) as files:
        assert list(files.prefetch(load, range(3))) == [0, 1, 4]
        files.write(lambda: 5)
        assert inline == [5]  # no threads: written at once


# ---- --skip-existing and option checks, one process ------------------------------------------------------------


def _folder(tmp_path: Path, n: int, *, size: tuple[int, int] = (48, 64)) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        Image.fromarray(photo(i, *size)).save(images / f"p{i:03d}.png")
        Image.fromarray(hole(i, *size)).save(masks / f"p{i:03d}.png")
    return images, masks


def inpaint(*args: str | Path) -> int:
    return main(["inpaint", *map(str, args)])


def test_skip_existing_skips_done_outputs_and_never_replaces_a_users_file(
    tmp_path: Path, weights: Path, capsys
) -> None:
    images, masks = _folder(tmp_path, 5)
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert inpaint("--image", images, "--mask", masks, "--output", ref, "--weights", weights) == 0
    out.mkdir()
    for name in ("p000.png", "p003.png"):  # finished by an earlier run
        (out / name).write_bytes((ref / name).read_bytes())
    Image.fromarray(photo(9, 10, 10)).save(out / "p001.png")  # the user's own file: another size
    (out / ".p004.png.0123abcd.tmp").write_bytes(b"half")  # what a kill during a write leaves
    capsys.readouterr()
    assert inpaint("--image", images, "--mask", masks, "--output", out, "--weights", weights, "--skip-existing") == 1
    captured = capsys.readouterr()
    assert "2 written" in captured.out and "2 skipped (already done)" in captured.out and "1 failed" in captured.out
    assert "p001.png exists; pass --overwrite" in captured.err
    with Image.open(out / "p001.png") as kept:
        assert kept.size == (10, 10)  # untouched
    argv = ["--image", images, "--mask", masks, "--output", out, "--weights", weights, "--skip-existing"]
    assert inpaint(*argv, "--overwrite") == 0  # replaces only what is not a finished output
    assert "1 written" in capsys.readouterr().out
    assert files_of(out) == files_of(ref)


def test_bad_option_combinations_are_one_line_errors(tmp_path: Path, weights: Path, capsys) -> None:
    images, masks = _folder(tmp_path, 2)
    before = files_of(images)
    common = ["--mask", masks, "--weights", weights]
    assert inpaint("--image", images, "--output", images, *common, "--skip-existing", "--overwrite") == 2
    assert "--skip-existing cannot tell finished outputs from the input images" in capsys.readouterr().err
    for option, value in (("--batch-size", "0"), ("--workers", "-1"), ("--threads", "0")):
        assert inpaint("--image", images, "--output", tmp_path / "o", *common, option, value) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{option} must be at least" in err
    assert files_of(images) == before and not (tmp_path / "o").exists()


def test_single_file_skip_existing_and_workers_none(tmp_path: Path, weights: Path, capsys) -> None:
    images, masks = _folder(tmp_path, 1)
    image, mask, out = images / "p000.png", masks / "p000.png", tmp_path / "o.png"
    assert inpaint("--image", image, "--mask", mask, "--output", out, "--weights", weights) == 0
    first = out.read_bytes()
    assert inpaint("--image", image, "--mask", mask, "--output", out, "--weights", weights, "--skip-existing") == 0
    assert "skipped" in capsys.readouterr().out and out.read_bytes() == first
    assert inpaint("--image", image, "--mask", mask, "--output", image, "--weights", weights, "--skip-existing") == 2
    assert "input image" in capsys.readouterr().err  # the input itself is never taken for a finished output
    folder = tmp_path / "f"
    assert inpaint("--image", images, "--mask", masks, "--output", folder, "--weights", weights, "--workers", "0") == 0
    assert (folder / "p000.png").read_bytes() == first  # no threads, batch of one image: the same bytes


# ---- torchrun, 2 CPU ranks (gloo) ------------------------------------------------------------------------------


def test_two_ranks_write_one_process_bytes_and_report_failures_once(tmp_path: Path, weights: Path, capsys) -> None:
    images, masks = _folder(tmp_path, 7)
    for i in (7, 8):  # another size and orientation: batches of mixed sizes
        Image.fromarray(photo(i, 64, 48)).save(images / f"p{i:03d}.png")
        Image.fromarray(hole(i, 64, 48)).save(masks / f"p{i:03d}.png")
    Image.fromarray(photo(20)).save(images / "q.jpg", quality=90)  # two LaMa-style masks: two outputs
    Image.fromarray(hole(1)).save(masks / "q_mask001.png")
    Image.fromarray(hole(2)).save(masks / "q_mask002.png")
    (images / "p005.png").write_bytes(b"damaged")  # a bad pair (on rank 0 or 1 by the batch rule)
    Image.fromarray(photo(30)).save(images / "lonely.png")  # no mask: a pairing failure
    common = ["--image", images, "--mask", masks, "--weights", weights, "--batch-size", "2"]
    assert inpaint(*common, "--output", tmp_path / "one") == 1
    one_out = capsys.readouterr().out
    rc, out, err = finish(torchrun("inpaint", *common, "--output", tmp_path / "two"))
    assert rc != 0, err[-2000:]  # pairs failed: status 1 from every rank (torchrun reports it as 1)
    assert files_of(tmp_path / "two") == files_of(tmp_path / "one")
    assert len(files_of(tmp_path / "one")) == 10
    summary = [line for line in out.splitlines() if line.startswith("pconv inpaint:")]
    assert summary == [one_out.strip().replace("one,", "two by 2 processes,")]
    assert "10 written" in summary[0] and "2 failed" in summary[0]
    assert err.count("  failed") == 2 and err.count("p005.png: cannot read") == 1 and err.count("lonely.png") == 1


def test_torchrun_set_up_error_is_printed_once(tmp_path: Path, weights: Path) -> None:
    images, masks = _folder(tmp_path, 1)
    rc, _, err = finish(torchrun("inpaint", "--image", images / "p000.png", "--mask", masks, "--output", tmp_path))
    assert rc != 0
    assert err.count("pconv inpaint: error: torchrun shares a folder of images between processes") == 1


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds torchrun's workers through /proc")
def test_killed_batch_restarted_with_skip_existing_ends_identical(tmp_path: Path, weights: Path, capsys) -> None:
    n = 40
    images, masks = _folder(tmp_path, n, size=(128, 128))
    ref, out = tmp_path / "ref", tmp_path / "out"
    common = ["--image", images, "--mask", masks, "--weights", weights, "--batch-size", "2", "--workers", "1"]
    assert inpaint(*common, "--output", ref) == 0
    agent = torchrun("inpaint", *common, "--output", out)
    deadline = time.monotonic() + 180
    while not (out.is_dir() and len(list(out.glob("p*.png"))) >= 4) and time.monotonic() < deadline:
        time.sleep(0.005)
    for pid in [*_children(agent.pid), agent.pid]:  # SIGKILL every rank, then torchrun itself
        os.kill(pid, signal.SIGKILL)
    finish(agent)
    done = {p.name for p in out.glob("p*.png")}
    assert 4 <= len(done) < n, "the kill should land mid-way"
    for name in done:
        assert (out / name).read_bytes() == (ref / name).read_bytes()  # atomic writes: no half-written output
    (out / f".p{n - 1:03d}.png.0badc0de.tmp").write_bytes(b"half")  # as a kill during a write leaves it
    rc, stdout, err = finish(torchrun("inpaint", *common, "--output", out, "--skip-existing"))
    assert rc == 0, err[-2000:]
    assert f"{n - len(done)} written to {out} by 2 processes, {len(done)} skipped (already done), 0 failed" in stdout
    assert files_of(out) == files_of(ref)


def test_evaluate_with_two_ranks_gives_the_same_table(shared_data: Path, tmp_path: Path, weights: Path) -> None:
    common = ["--method", "pconv", "mean", "--weights", weights, "--photos", shared_data / "eval_photos"]
    common += ["--masks", shared_data / NVIDIA, "--limit", "2", "--batch-size", "6", "--quiet", "--no-shift-average"]
    common += ["--device", "cpu"]
    assert main(["evaluate", *map(str, common), "--out", str(tmp_path / "one")]) == 0
    rc, out, err = finish(torchrun("evaluate", *common, "--out", tmp_path / "two"))
    assert rc == 0, err[-2000:]
    assert out.count("# Evaluation results") == 1  # one report, from rank 0

    def tables(folder: str) -> list[str]:
        lines = (tmp_path / folder / "results.md").read_text().splitlines()
        return [line for line in lines if line.startswith("| (") or line.startswith("| all bins")]

    def scores(folder: str) -> list[tuple]:
        rows = csv.DictReader((tmp_path / folder / "cases.csv").open())
        return [(r["case"], r["method"], r["mask"], r["l1_percent"], r["psnr_db"], r["ssim"]) for r in rows]

    assert len(tables("one")) == 3 * 7 and tables("two") == tables("one")  # pconv, mean, best per cell
    assert len(scores("one")) == 2 * 12 * 2 and scores("two") == scores("one")
    assert (tmp_path / "two" / "samples.png").read_bytes() == (tmp_path / "one" / "samples.png").read_bytes()
    assert "processes: 2" in (tmp_path / "two" / "results.md").read_text()


@pytest.mark.gpu
def test_two_ranks_on_gpus_write_one_process_bytes(tmp_path: Path, weights: Path) -> None:
    images, masks = _folder(tmp_path, 9)
    common = ["--image", images, "--mask", masks, "--weights", weights, "--batch-size", "4"]
    assert inpaint(*common, "--output", tmp_path / "one", "--device", "cuda") == 0
    shared = [] if torch.cuda.device_count() >= 2 else ["--device", "cuda:0"]  # one GPU: both ranks on it
    rc, out, err = finish(torchrun("inpaint", *common, "--output", tmp_path / "two", *shared))
    assert rc == 0, err[-2000:]
    assert "9 written" in out and files_of(tmp_path / "two") == files_of(tmp_path / "one")
