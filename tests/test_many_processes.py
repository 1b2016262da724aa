"""One run over many processes (issue 15): shards, torchrun ranks on the CPU (gloo), job-array
shards, merging, a rank killed mid-run. Real processes and files throughout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saliency.files.inputs import InputFile
from saliency.files.manifest import fold, manifest_files
from saliency.files.rows import Row
from saliency.parallel.shards import Shard, assign, from_environment, parse_shard, select
from tests.outputs_check import check_nothing_lost, manifest_rows

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"


def paths(count: int) -> list[str]:
    return [f"folder{i % 7}/photo_{i:04d}" for i in range(count)]


def test_shards_are_balanced_and_each_path_in_exactly_one() -> None:
    keys = paths(1000)
    for count in (2, 3, 7, 8, 16):
        sizes = Counter(assign(keys, count))
        assert sorted(sizes) == list(range(count))
        assert max(sizes.values()) - min(sizes.values()) <= 1  # within 10% of 1000 / count
        assert sum(sizes.values()) == 1000


def test_shards_do_not_depend_on_the_process_or_its_hash_seed() -> None:
    code = (
        "from tests.test_many_processes import paths; from saliency.parallel.shards import assign;"
        "print(assign(paths(1000), 7))"
    )
    seen = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
        )
        assert result.returncode == 0, result.stderr
        seen.add(result.stdout)
    assert len(seen) == 1
    assert seen.pop().strip() == str(assign(paths(1000), 7))


def test_a_shard_takes_its_inputs_in_their_order() -> None:
    files = [InputFile(Path(p), p, Path(p)) for p in paths(50)]
    shares = [select(files, Shard(i, 3)) for i in range(3)]
    assert sorted(f.shown for share in shares for f in share) == sorted(paths(50))
    for share in shares:
        assert share == sorted(share, key=files.index)
    assert [select(files, Shard(i, 3)) for i in range(3)] == shares  # the same every time


def test_shards_from_the_launchers_variables() -> None:
    assert from_environment({}) is None
    assert from_environment({"RANK": "3", "WORLD_SIZE": "4"}) == Shard(3, 4)
    assert from_environment({"RANK": "0", "WORLD_SIZE": "1"}) is None
    slurm = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert from_environment({**slurm, "SLURM_ARRAY_TASK_MIN": "10"}) == Shard(2, 4)
    with pytest.raises(ValueError, match="--array=0-N"):
        from_environment(slurm)
    with pytest.raises(ValueError, match="whole number"):
        from_environment({"RANK": "x", "WORLD_SIZE": "2"})
    assert parse_shard(" 1 / 3 ") == Shard(1, 3)
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fourteen distinct small photos, some in a subfolder, one that cannot be decoded."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    sources = ["chelsea.png", "coffee.jpg", "astronaut.jpg", "rocket.jpg"]
    for i in range(13):
        photo = Image.open(SAMPLES / sources[i % 4]).convert("RGB")
        left, top = rng.integers(0, 60, 2)
        photo = photo.crop((left, top, left + 240, top + 180)).resize((64, 48))
        photo.save(root / ("sub" if i % 3 == 0 else ".") / f"p{i:02d}.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return root


def saliency(*args: object) -> list[str]:
    return [sys.executable, "-m", "saliency_cli", *map(str, args)]


def run(command: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env={**os.environ, **env},
    )  # fmt: skip


def torchrun(count: int, *args: object) -> list[str]:
    return [
        TORCHRUN,
        "--standalone",
        f"--nproc-per-node={count}",
        "-m",
        "saliency_cli",
        *map(str, args),
    ]


# One image per pass and one thread per process (torchrun's default, set for every process
# here): float sums then run in the same order in every process, so rows match to the digit.
ARGS = ("--batch-size", "1", "--workers", "1")
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="module")
def single(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single")
    result = run(saliency("explain", folder, "--out", out, *ARGS))
    assert result.returncode == 1, result.stderr  # the broken photo
    return out


def rows_as_set(out: Path) -> set[str]:
    return {json.dumps(row, sort_keys=True) for row in manifest_rows(out)}


def pictures(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}


def assert_same_result(out: Path, single: Path) -> None:
    """Every image once, the manifest equal to one process's as a set of rows, pictures
    byte-identical, no part or lock of a shard left."""
    rows = check_nothing_lost(out)
    assert len(rows) == 14
    assert rows_as_set(out) == rows_as_set(single)
    assert pictures(out) == pictures(single)
    assert not list(out.glob("results.part.*")) and not list(out.glob(".saliency.*-of-*"))


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(folder: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(torchrun(2, "explain", folder, "--out", out, *ARGS))
    assert result.returncode == 1, result.stderr  # torchrun passes on the failed photo's code
    assert_same_result(out, single)
    summary = [line for line in result.stderr.splitlines() if "images done," in line]
    assert len(summary) == 1, result.stderr  # on rank 0 only, counting both ranks
    assert summary[0].startswith("2 processes: 13 images done, 13 maps written, 1 input failed")
    assert "shard 1/2: error: broken.jpg" in result.stderr.replace(str(folder) + "/", "")


@pytest.mark.slow
def test_job_array_shards_then_merge(folder: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = subprocess.Popen(
        saliency("explain", folder, "--out", out, *ARGS), cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"},
    )  # fmt: skip
    second = run(saliency("explain", folder, "--out", out, "--shard", "1/2", *ARGS))
    _, stderr = first.communicate(timeout=300)
    assert {first.returncode, second.returncode} <= {0, 1}, stderr + second.stderr
    assert "shard 0/2: " in stderr and "shard 1/2: " in second.stderr
    merged = run(saliency("merge", out))
    assert merged.returncode == 0, merged.stderr
    assert "13 pictures, 1 failed" in merged.stderr
    assert_same_result(out, single)
    # and a rerun of either shard does nothing
    again = run(saliency("explain", folder, "--out", out, "--shard", "0/2", *ARGS))
    assert "0 images done, 0 maps written" in again.stderr and "already done" in again.stderr


def test_merge_after_a_shard_was_killed_and_errors(folder: Path, tmp_path: Path) -> None:
    missing = run(saliency("merge", tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr


def rank_pids(parent: int) -> dict[int, int]:
    """The torchrun workers below ``parent``, by rank (from their environment)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        variables = dict(v.split(b"=", 1) for v in environ if b"=" in v)
        if ppid == parent and b"RANK" in variables and b"LOCAL_RANK" in variables:
            found[int(variables[b"RANK"])] = int(entry.name)
    return found


@pytest.mark.slow
def test_a_rank_killed_mid_run_then_a_rerun_with_another_count(
    folder: Path, single: Path, tmp_path: Path
) -> None:
    out, fifo = tmp_path / "out", tmp_path / "fifo"
    os.mkfifo(fifo)
    command = [
        TORCHRUN, "--standalone", "--nproc-per-node=2", "-m", "tests.stall", "model", str(fifo),
        "explain", str(folder), "--out", str(out), *ARGS,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "SALIENCY_STALL_AT": "4"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        stuck = f"{fifo.name}.reached.*"  # a file per rank stuck in its fourth pass
        while len(rank_pids(proc.pid)) < 2 or len(list(tmp_path.glob(stuck))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.1)
        time.sleep(1.0)  # both ranks stuck in their fourth pass, three images done each
        # (it waited for the first rank alone: under load the other could be an image behind)
        os.kill(rank_pids(proc.pid)[1], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert list(out.glob("results.part.*")), stderr  # merged by no one: a rank died
    # the pictures with a row (a picture whose row the kill prevented is rightly redone): the
    # rank stopped by torchrun's SIGTERM recorded its three written pictures as it left (its
    # run thread, stuck in the model, could not); the killed rank, those recorded before
    recorded = fold(manifest_files(out)).values()
    names = [r.outputs[0] for r in recorded if r.is_ok]
    before = {name: (out / name).stat().st_mtime_ns for name in names}
    assert len(before) >= 3, (sorted(before), stderr)
    for index in range(3):  # the rerun: three job-array shards, one after another
        result = run(saliency("explain", folder, "--out", out, "--shard", f"{index}/3", *ARGS))
        assert result.returncode in (0, 1), result.stderr
    assert_same_result(out, single)
    after = {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert {name: after[name] for name in before} == before  # nothing done twice


def test_shards_of_two_counts_never_write_at_once(tmp_path: Path) -> None:
    from saliency import OutputBusyError
    from saliency.files.lock import lock_output

    code = (
        "import sys, time; from pathlib import Path; from saliency.files.lock import lock_output;"
        "from saliency.parallel.shards import Shard\n"
        "with lock_output(Path(sys.argv[1]), Shard(0, 2)):\n"
        "    print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with lock_output(tmp_path, Shard(1, 2)):  # the same run's other shard: together
            pass
        for other in (Shard(0, 2), Shard(1, 3), None):
            with (
                pytest.raises(OutputBusyError, match=f"process {holder.pid} "),
                lock_output(tmp_path, other),
            ):
                pass
    finally:
        holder.kill()
        holder.wait()
    with lock_output(tmp_path, Shard(1, 3)):  # free once the holder is gone
        pass


def row(image: str, name: str, status: str = "ok", model: str | None = None) -> Row:
    return Row(image, status, (name,) if status == "ok" else (), model)


def test_a_shards_part_replaces_and_drops_rows_and_merging_folds_them(tmp_path: Path) -> None:
    from saliency.files.manifest import Manifest, merge_parts

    lone = Manifest(tmp_path)
    for image in ("a", "b", "c"):
        lone.write(row(image, f"{image}.png"))
    lone.close()
    ours = {"a", "b"}
    shard = Manifest(tmp_path, Shard(0, 2), mine=lambda r: r.image in ours)
    assert {r.image for r in shard.rows.values()} == ours  # the rows of its images only
    shard.write(row("a", "a.png", model="new"))
    shard.close(keep=lambda r: r.image != "b")  # b's picture no longer holds
    part = next(tmp_path.glob("results.part.*.0-of-2.jsonl"))
    statuses = sorted((r["image"], r["status"]) for r in map(json.loads, part.open()))
    assert statuses == [("a", "ok"), ("b", "dropped")]
    # a later part of another count wins over it; a part still being written is read whole
    later = Manifest(tmp_path, Shard(1, 3))
    later.write(row("c", "c.png", model="newer"))
    later.close()
    with (tmp_path / "results.part.000009.2-of-3.jsonl").open("w") as unfinished:
        unfinished.write(json.dumps(row("d", "d.png").to_dict()) + "\n" + '{"image": "e", "outp')
    merged = merge_parts(tmp_path)
    rows = {Row.from_dict(r).key: r for r in manifest_rows(tmp_path)}
    assert merged.parts == 3 and set(rows) == {"output:a.png", "output:c.png", "output:d.png"}
    assert rows["output:a.png"]["model"] == "new" and rows["output:c.png"]["model"] == "newer"
    assert not list(tmp_path.glob("results.part.*"))


def test_raw_maps_in_containers_read_back_with_one_call(folder: Path, tmp_path: Path) -> None:
    from saliency import read_maps
    from saliency.files import raw_maps
    from saliency.files.manifest import read_rows

    files, npy = tmp_path / "files", tmp_path / "containers"
    both = ("--method", "guided", "--method", "gradcam", *ARGS)
    for out, kind in ((files, "npy"), (npy, "safetensors")):
        raw = ("--save-raw", "--raw-format", kind)
        result = run(saliency("explain", folder, "--out", out, *raw, *both))
        assert result.returncode == 1, result.stderr
    by_file, contained = read_maps(files), read_maps(npy)
    assert len(by_file) == len(contained) == 26 and set(by_file) == set(contained)
    for name in by_file:
        np.testing.assert_array_equal(by_file[name], contained[name])
        assert by_file.geometry(name) == contained.geometry(name)
    assert not list(npy.rglob("*.npy")) and len(list((npy / "maps").iterdir())) == 1
    image = next(iter(contained.entries.values())).image
    assert contained.find(image, "gradcam").ndim == 3
    rows = read_rows(npy / "results.jsonl").values()
    assert all(r.outputs[1].startswith("maps/") for r in rows if r.is_ok)
    # a rerun keeps them; a lost container is noticed and its maps redone
    (next((npy / "maps").iterdir())).unlink()
    again = run(saliency("explain", folder, "--out", npy, "--save-raw", "--raw-format",
                         "safetensors", *both))  # fmt: skip
    assert "13 images done, 26 maps written" in again.stderr
    assert len(read_maps(npy)) == 26
    replaced = run(saliency("explain", folder, "--out", npy, "--save-raw", "--raw-format",
                            "safetensors", "--overwrite", *both))  # fmt: skip
    assert replaced.returncode == 1, replaced.stderr
    assert len(list((npy / "maps").iterdir())) == 1  # the replaced container is gone
    # small containers: a run spreads its maps over several
    store = raw_maps.RawStore(tmp_path / "small", chunk_bytes=1)
    for i in range(3):
        store.add(f"m{i}", np.full((1, 2, 2), i, np.float32), {"i": i})
    store.close()
    assert len(list((tmp_path / "small" / "maps").iterdir())) == 3


@pytest.mark.slow
def test_the_docs_distributed_sampler_job_under_torchrun(tmp_path: Path) -> None:
    import re

    page = (ROOT / "docs" / "scaling.md").read_text()
    blocks = re.findall(r"```python\n(# job\.py\n.*?)```", page, re.S)
    assert len(blocks) == 1
    (tmp_path / "job.py").write_text(blocks[0])
    (tmp_path / "sample_images").symlink_to(SAMPLES)
    launch = [TORCHRUN, "--standalone", "--nproc-per-node=2", "job.py"]
    done = subprocess.run(launch, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    import torch

    for photo in SAMPLES.glob("*.jpg"):
        maps = torch.load(tmp_path / f"{photo.stem}.maps.pt")
        assert maps["guided"].shape == (3, 224, 224) and maps["gradcam"].shape == (1, 224, 224)


def test_a_rank_that_cannot_join_says_which_and_why(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = run(saliency("explain", folder, "--out", out), WORLD_SIZE="2", RANK="1")
    assert bad.returncode == 2 and "torchrun variables are incomplete" in bad.stderr
    assert "MASTER_ADDR" in bad.stderr
    both = run(saliency("explain", folder, "--out", out, "--shard", "0/2"), WORLD_SIZE="2")
    assert both.returncode == 2 and "each rank takes its own" in both.stderr
    slurm = run(saliency("explain", folder, "--out", out), SLURM_ARRAY_TASK_ID="5",
                SLURM_ARRAY_TASK_COUNT="2")  # fmt: skip
    assert slurm.returncode == 2 and "SLURM_ARRAY_TASK_COUNT 2" in slurm.stderr
    whole = run(saliency("sanity", folder, "--out", out), WORLD_SIZE="2", RANK="0")
    assert whole.returncode == 2 and "only explain splits its work" in whole.stderr
    assert not out.exists() or not list(out.iterdir())


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.slow
@pytest.mark.skipif(cuda_devices() < 1, reason="needs CUDA")
def test_torchrun_ranks_each_take_their_gpu(folder: Path, single: Path, tmp_path: Path) -> None:
    """One rank per GPU (two where there are two); with more ranks than GPUs, the rank without
    one says so."""
    gpus = min(cuda_devices(), 2)
    out = tmp_path / "out"
    result = run(torchrun(gpus, "explain", folder, "--out", out, "--device", "cuda", *ARGS))
    assert result.returncode == 1, result.stderr
    rows = check_nothing_lost(out)
    assert len(rows) == 14 and sum(r["status"] == "ok" for r in rows) == 13
    if cuda_devices() == gpus:  # a rank more than there are GPUs
        extra = run(
            torchrun(gpus + 1, "explain", folder, "--out", tmp_path / "o", "--device", "cuda")
        )
        assert extra.returncode != 0
        assert f"rank {gpus}: LOCAL_RANK is {gpus} but this node has {gpus}" in extra.stderr
