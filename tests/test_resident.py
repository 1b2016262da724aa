"""The device-resident path (decode, preprocess and draw where the model is), run on the CPU with
the same code a GPU runs; checked against the Pillow path, which is independent of it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from saliency import load_model
from saliency.engine.options import MethodOptions
from saliency.files.inputs import collect_inputs
from saliency.geometry import Geometry
from saliency.pictures.paint import RenderOptions, paint
from saliency.pictures.render import prepare
from saliency.pipeline import codecs, resident
from saliency.pipeline.codecs import CodecError
from saliency.pipeline.drawing import Encoding, is_ours
from saliency.pipeline.job import run_job
from saliency.pipeline.options import JobOptions
from saliency.tasks.classification import ClassPlan
from tests.outputs_check import check_nothing_lost

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
# Every test here runs on the GPU too where there is one (benchmarks/gpu.sh runs them there)
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(scope="module", params=DEVICES, ids=DEVICES)
def loaded(request: pytest.FixtureRequest):
    return load_model(device=request.param)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, size in (("coffee.jpg", (120, 90)), ("astronaut.jpg", (80, 100))):
        Image.open(SAMPLES / name).convert("RGB").resize(size).save(folder / name, quality=92)
    Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((90, 70)).save(folder / "cat.png")
    return folder


def run(loaded, photos: Path, out: Path, resident_path: bool, **settings):
    outcomes = []
    options = JobOptions(
        methods=("guided", "gradcam"),
        fit=settings.pop("fit", None),
        encoding=Encoding(settings.pop("fmt", "jpg")),
        resident=resident_path,
        method_options=MethodOptions(batch_size=settings.pop("batch", 4)),
        target=settings.pop("target", ClassPlan()),
    )
    files = collect_inputs([str(photos)]).files
    run_job(loaded, files, out, options, on_image=outcomes.append, **settings)
    return outcomes


@pytest.mark.parametrize("fit", ["native", "crop", "resize"])
def test_pictures_match_the_cpu_path(loaded, photos: Path, tmp_path: Path, fit: str):
    run(loaded, photos, tmp_path / "cpu", False, fit=fit)
    outcomes = run(loaded, photos, tmp_path / "device", True, fit=fit)
    assert not any(o.error for o in outcomes)
    notes = [w for o in outcomes for w in o.warnings]
    assert notes == [resident.CPU_DECODED]  # the PNG, said once
    rows = check_nothing_lost(tmp_path / "device")
    assert len(rows) == 6
    for row in rows:
        name = row["outputs"][0]
        assert is_ours(tmp_path / "device" / name)
        cpu = np.asarray(Image.open(tmp_path / "cpu" / name), dtype=float)
        device = np.asarray(Image.open(tmp_path / "device" / name), dtype=float)
        assert cpu.shape == device.shape, name  # same geometry: the photo's size
        difference = np.abs(cpu - device)
        # the same picture up to decoding and resampling: a few levels on average, large
        # differences only where Guided Backprop's pixel-level maps react to the input's rounding.
        # nvJPEG's IDCT and chroma upsampling are not libjpeg's: 6.4 and 6.8 on an H200 for the
        # 80x100 photo's Guided Backprop, against under 6 with the same decoder on both paths
        assert difference.mean() < (8 if loaded.device.type == "cuda" else 6), name
        assert (difference > 32).mean() < 0.05, name


def test_device_painter_matches_pillow_painter():
    torch.manual_seed(0)
    photo = Image.open(SAMPLES / "coffee.jpg").convert("RGB").resize((160, 120))
    pixels = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)
    maps = torch.randn(3, 24, 32)
    for geometry in (
        Geometry((160, 120), (0.0, 0.0, 160.0, 120.0), (32, 24)),
        Geometry((160, 120), (20.0, 10.0, 140.0, 100.0), (32, 24)),  # a crop: 0 outside
    ):
        styles = (("overlay", "abs"), ("heatmap", "all"), ("rgb", "abs"), ("grayscale", "positive"))
        for style, sign in styles:
            options = RenderOptions(style=style, sign=sign)
            expected = np.asarray(paint(photo, prepare(maps, options), geometry, options), int)
            drawn, empty = resident.paint(pixels, maps, geometry, options)
            got = drawn.permute(1, 2, 0).numpy().astype(int)
            assert not empty and got.shape == expected.shape
            difference = np.abs(got - expected)
            # equal but for one level where float rounding sits on a .5 boundary
            assert (difference > 0).mean() < 0.001 and difference.max() <= 1


def test_empty_map_and_bad_jpeg(loaded, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(SAMPLES / "coffee.jpg").convert("RGB").resize((64, 48)).save(folder / "good.jpg")
    buffer = io.BytesIO()
    Image.open(SAMPLES / "rocket.jpg").convert("RGB").resize((64, 48)).save(buffer, "JPEG")
    (folder / "cut.jpg").write_bytes(buffer.getvalue()[:300])  # a JPEG that ends early
    outcomes = run(loaded, folder, tmp_path / "out", True)
    errors = {o.input.path.name: o.error for o in outcomes if o.error}
    assert set(errors) == {"cut.jpg"} and errors["cut.jpg"]
    assert len(check_nothing_lost(tmp_path / "out")) == 3  # 2 pictures + 1 error row
    pixels = torch.zeros(3, 10, 12, dtype=torch.uint8)
    geometry = Geometry((12, 10), (0.0, 0.0, 12.0, 10.0), (6, 5))
    drawn, empty = resident.paint(pixels, torch.zeros(3, 5, 6), geometry, RenderOptions())
    assert empty and torch.equal(drawn, pixels)


def test_exif_orientation_as_on_the_cpu(loaded, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = Image.open(SAMPLES / "coffee.jpg").convert("RGB").resize((80, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(folder / "turned.jpg", exif=exif.tobytes())
    run(loaded, folder, tmp_path / "cpu", False)
    run(loaded, folder, tmp_path / "device", True)
    for out in ("cpu", "device"):
        assert Image.open(tmp_path / out / "turned.guided.jpg").size == (60, 80)


def test_same_bytes_whatever_batch_size_and_writers(loaded, photos: Path, tmp_path: Path):
    seen = []
    for batch, writers in ((1, 0), (3, 0), (16, 0)):
        out = tmp_path / f"out{batch}"
        run(loaded, photos, out, True, batch=batch, writers=writers, fmt="png")
        seen.append({p.name: p.read_bytes() for p in sorted(out.glob("*.png"))})
    assert len(seen[0]) == 6 and seen[0] == seen[1] == seen[2]


def _jpeg_variants(folder: Path) -> list[str]:
    """Every JPEG variant Pillow can write: colour spaces, progressive, subsampling, restart
    markers, EXIF orientations, odd and tiny sizes."""
    folder.mkdir()
    base = Image.open(SAMPLES / "coffee.jpg").convert("RGB").resize((75, 53))
    variants: dict[str, tuple[Image.Image, dict]] = {
        "rgb": (base, {}),
        "gray": (base.convert("L"), {}),
        "cmyk": (base.convert("CMYK"), {}),
        "progressive": (base, {"progressive": True}),
        "444": (base, {"subsampling": 0}),
        "422": (base, {"subsampling": 1}),
        "restart": (base, {"restart_marker_blocks": 2}),
        "odd": (base.resize((17, 9)), {}),
        "tiny": (base.resize((1, 1)), {}),
        "tall": (base.resize((3, 61)), {}),
        "low_quality": (base, {"quality": 5}),
    }
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        variants[f"exif{orientation}"] = (base, {"exif": exif.tobytes()})
    for name, (image, settings) in variants.items():
        image.save(folder / f"{name}.jpg", "JPEG", **settings)
    return sorted(variants)


def test_every_jpeg_variant_runs_on_the_device_path_as_on_the_cpu(loaded, tmp_path: Path):
    names = _jpeg_variants(tmp_path / "in")
    # one class for every variant and both paths: a 75x53 photo's top two classes are close
    # (0.16 and 0.12), so a decoder's rounding may swap its top-1 and with it the whole map (an
    # exif1 Grad-CAM 16 levels off on an H200), which says nothing about the decoding
    whiskey_jug = ClassPlan(kind="class", index=loaded.categories.index("whiskey jug"))
    cpu = run(loaded, tmp_path / "in", tmp_path / "cpu", False, fmt="png", target=whiskey_jug)
    device = run(loaded, tmp_path / "in", tmp_path / "device", True, fmt="png", target=whiskey_jug)
    assert not [o for o in cpu + device if o.error]
    on_cpu = [w for o in device for w in o.warnings if "CPU" in w]
    if loaded.device.type == "cuda" and codecs.codec_name() == "torchvision":
        # nvJPEG refuses some variants ("Failed to decode jpeg stream", seen on an H200): those
        # are redone on the CPU path with one note, and still match below
        assert len(on_cpu) <= 1
    else:
        assert not on_cpu  # all decoded on the device
    rows = check_nothing_lost(tmp_path / "device")
    assert sorted({Path(r["image"]).stem for r in rows}) == names
    differ = {}  # every variant compared, not only up to the first that differs
    for row in rows:
        name = row["outputs"][0]
        ours = np.asarray(Image.open(tmp_path / "device" / name), dtype=float)
        theirs = np.asarray(Image.open(tmp_path / "cpu" / name), dtype=float)
        if ours.shape != theirs.shape:  # another orientation or size
            differ[name] = f"{ours.shape} vs {theirs.shape}"
        elif np.abs(ours - theirs).mean() >= 12:
            differ[name] = f"{np.abs(ours - theirs).mean():.1f} levels"
    assert not differ


def test_what_the_device_fails_on_is_redone_on_the_cpu_with_one_note(
    loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Faults injected into the device's decoder, preprocessing and drawing (not the files): the
    inputs they hit are done on the CPU path, each reason said once, and no input fails."""
    names = _jpeg_variants(tmp_path / "in")
    decode, preprocess = resident.decode_jpegs, resident.preprocess

    def refusing(data, device):
        if len(data) > 1:
            raise CodecError("batch refused")
        if data[0].numel() % 3 == 0:  # some of the files, by their size
            raise CodecError("refused") from RuntimeError("unsupported JPEG variant")
        return decode(data, device)

    def failing(photo, *args, **kwargs):
        if photo.shape[-1] == 17:
            raise RuntimeError("out of memory")
        return preprocess(photo, *args, **kwargs)

    def not_drawing(photo, *args, **kwargs):
        if photo.shape[-1] == 3:  # the tall photo
            raise RuntimeError("no kernel image")
        return paint(photo, *args, **kwargs)

    paint = resident.paint
    monkeypatch.setattr(resident, "decode_jpegs", refusing)
    monkeypatch.setattr(resident, "preprocess", failing)
    monkeypatch.setattr(resident, "paint", not_drawing)
    outcomes = run(loaded, tmp_path / "in", tmp_path / "out", True, fmt="png")
    assert not [o.error for o in outcomes if o.error]
    notes = [w for o in outcomes for w in o.warnings]
    refused = resident.REFUSED.format(why="RuntimeError: unsupported JPEG variant")
    redone = resident.REDONE.format(why="RuntimeError: out of memory")
    undrawn = resident.REDONE.format(why="RuntimeError: no kernel image")
    assert sorted(notes) == sorted([refused, redone, undrawn])  # each reason once
    rows = check_nothing_lost(tmp_path / "out")
    assert sorted({Path(r["image"]).stem for r in rows}) == names


def quantile_normalized(values: torch.Tensor, percentile: float) -> torch.Tensor | None:
    """The scaling as first written, with torch.quantile (which reads the device)."""
    magnitude = values.abs().flatten()
    if magnitude.numel() == 0 or not bool((magnitude > 0).any()):
        return None
    scale = float(torch.quantile(magnitude.double(), percentile / 100.0))
    if scale <= 0:
        scale = float(magnitude.max())
    return (values / scale).clamp(-1.0, 1.0)


def test_deferred_normalization_equals_torch_quantiles() -> None:
    """Maps are scaled without reading anything back, to the bits torch.quantile gives."""
    from saliency.pictures.render import normalize, normalize_deferred

    torch.manual_seed(1)
    for n in (1, 2, 7, 100, 224 * 224):
        for k in range(20):
            values = torch.randn(1, n) * 10 * torch.rand(1)
            if k % 4 == 0:
                values[torch.rand(1, n) < 0.7] = 0
            for percentile in (0.0, 50.0, 99.0, 100.0):
                expected = quantile_normalized(values, percentile)
                found, empty = normalize_deferred(values, percentile)
                if expected is None:  # all zero
                    assert empty and not found.any() and normalize(values, percentile) is None
                else:
                    assert not empty and torch.equal(found, expected)
    found, empty = normalize_deferred(torch.zeros(1, 9))
    assert empty and not found.any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_painting_makes_the_host_wait_for_nothing() -> None:
    photo = torch.randint(0, 256, (3, 120, 160), dtype=torch.uint8, device="cuda")
    maps = torch.randn(3, 24, 32, device="cuda")
    geometry = Geometry((160, 120), (20.0, 10.0, 140.0, 100.0), (32, 24))
    for style, sign in (
        ("overlay", "abs"),
        ("heatmap", "all"),
        ("rgb", "abs"),
        ("grayscale", "positive"),
    ):
        options = RenderOptions(style=style, sign=sign)
        resident.paint(photo, maps, geometry, options)  # constants made once, before the check
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            resident.paint(photo, maps, geometry, options)
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_torchcodec_decodes_every_variant_as_torchvision_does(tmp_path: Path) -> None:
    """The device path's codec: TorchCodec where it works, with torchvision's pixels (and its
    EXIF orientation), for every JPEG variant; its encoder's JPEGs decode back closely."""
    if codecs.codec_name() != "TorchCodec":
        pytest.skip("TorchCodec is not installed or does not work with this torch")
    from torchvision.io import ImageReadMode, decode_jpeg

    for name in _jpeg_variants(tmp_path / "in"):
        data = (tmp_path / "in" / f"{name}.jpg").read_bytes()
        data = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        (ours,) = codecs.decode_jpegs([data], torch.device("cpu"))
        theirs = decode_jpeg(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        assert torch.equal(ours, theirs), name
    with pytest.raises(codecs.CodecError):
        codecs.decode_jpegs(
            [torch.tensor([255, 216, 255, 0, 1, 2], dtype=torch.uint8)], torch.device("cpu")
        )
    picture = torch.from_numpy(np.asarray(Image.open(SAMPLES / "coffee.jpg").convert("RGB")).copy())
    picture = picture.permute(2, 0, 1).contiguous()
    encoded = codecs.encode_jpeg(picture, 95)
    back = decode_jpeg(encoded, mode=ImageReadMode.RGB)
    assert back.shape == picture.shape and (back.int() - picture.int()).abs().float().mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_where_the_decoder_ignores_it(orientation: int):
    """nvJPEG ignores ``apply_exif_orientation``: the device path turns its pixels itself, and
    they equal torchvision's CPU decoder's, which applies it (and Pillow's exif_transpose)."""
    from torchvision.io import decode_jpeg

    from saliency.pipeline.codecs import exif_orientation, orient

    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.open(SAMPLES / "coffee.jpg").convert("RGB").resize((75, 53)).save(
        buffer, "JPEG", exif=exif.tobytes()
    )
    data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    assert exif_orientation(data) == orientation
    turned = orient(decode_jpeg(data, mode="RGB"), exif_orientation(data))
    assert torch.equal(turned, decode_jpeg(data, mode="RGB", apply_exif_orientation=True))
    assert exif_orientation(torch.zeros(10, dtype=torch.uint8)) == 1  # not a JPEG: as it is
