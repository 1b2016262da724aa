"""Lossless (and lossy) encoders side by side on the same 1024x768 overlays.

Each candidate encodes the same pictures; the script checks that Pillow decodes every PNG back
to the same pixels, and prints median milliseconds per picture and size. Candidates that are not
installed are listed as such.

    python benchmarks/png_encoders.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from saliency import RenderOptions, load_image
from saliency.geometry import Geometry
from saliency.pictures.render import draw
from saliency.pipeline.png import fast_png

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"


def overlays() -> list[np.ndarray]:
    """Real photos at 1024x768 with a smooth, peaked map drawn over them, as the tool draws."""
    pictures = []
    torch.manual_seed(0)
    for name in ("grace_hopper.jpg", "chelsea.png", "coffee.jpg", "astronaut.jpg"):
        photo = load_image(SAMPLES / name).resize((1024, 768))
        maps = torch.nn.functional.interpolate(
            torch.rand(1, 3, 14, 14), size=(224, 224), mode="bicubic"
        )[0]
        maps = maps**4 + 0.05 * torch.rand(3, 224, 224)  # peaks and fine texture, like a map
        geometry = Geometry((1024, 768), (0.0, 0.0, 1024.0, 768.0), (224, 224))
        drawn, _ = draw(photo, maps, geometry, RenderOptions())
        pictures.append(np.asarray(drawn))
    return pictures


def pillow(level: int, strategy: int) -> Callable[[np.ndarray], bytes]:
    def encode(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG", compress_level=level, compress_type=strategy)
        return buffer.getvalue()

    return encode


def candidates() -> dict[str, Callable[[np.ndarray], bytes] | str]:
    found: dict[str, Callable[[np.ndarray], bytes] | str] = {}
    for level in (0, 1, 3, 6):
        found[f"Pillow level {level}"] = pillow(level, -1)
        found[f"Pillow level {level}, RLE"] = pillow(level, 3)
    try:
        import imagecodecs

        for level in (1, 3, 6):
            found[f"imagecodecs png level {level}"] = lambda a, v=level: imagecodecs.png_encode(
                a, level=v
            )
            found[f"imagecodecs spng level {level}"] = lambda a, v=level: imagecodecs.spng_encode(
                a, level=v
            )
    except ImportError:
        found["imagecodecs"] = "not installed"
    try:
        import cv2

        for level in (1, 3):
            for strategy, label in ((cv2.IMWRITE_PNG_STRATEGY_DEFAULT, ""), (3, ", RLE")):

                def encode(a: np.ndarray, v: int = level, s: int = strategy) -> bytes:
                    flags = [cv2.IMWRITE_PNG_COMPRESSION, v, cv2.IMWRITE_PNG_STRATEGY, s]
                    ok, data = cv2.imencode(".png", a[:, :, ::-1], flags)
                    assert ok
                    return data.tobytes()

                found[f"OpenCV level {level}{label}"] = encode
    except ImportError:
        found["OpenCV"] = "not installed"
    try:
        import fpng

        found["fpng"] = fpng.from_ndarray
        found["fpng, with our marker (what we write)"] = lambda a: fast_png(a, "saliency", "{}")
    except ImportError:
        found["fpng"] = "not installed"
    return found


def lossy(array: np.ndarray, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, quality=quality)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pictures = overlays()
    rows = []
    table = candidates()
    table["Pillow JPEG q90"] = lambda a: lossy(a, "JPEG", 90)
    table["Pillow WebP q90"] = lambda a: lossy(a, "WEBP", 90)
    for name, encode in table.items():
        if isinstance(encode, str):
            print(f"{name:32s} {encode}")
            continue
        times, size = [], 0
        for picture in pictures:
            data = encode(picture)
            size += len(data)
            if "JPEG" not in name and "WebP" not in name:
                back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                assert np.array_equal(back, picture), f"{name} is not lossless"
            for _ in range(args.repeat):
                start = time.perf_counter()
                encode(picture)
                times.append(time.perf_counter() - start)
        rows.append((statistics.median(times) * 1000, name, size / len(pictures) / 1024))
    print(f"{'encoder (1024x768 overlay, one core)':40s} {'ms':>7s} {'KiB':>7s}")
    for ms, name, kib in sorted(rows):
        print(f"{name:40s} {ms:7.1f} {kib:7.0f}")


if __name__ == "__main__":
    main()
