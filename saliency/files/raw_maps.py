"""Raw maps by the thousand: containers of many maps each, and reading any folder's raw maps.

At millions of images one ``.npy`` per map is a file-system problem. With
``raw_format="safetensors"`` a run (each shard's process on its own) gathers the maps into
``maps/<run>-<chunk>.safetensors`` files of about :data:`CHUNK_BYTES` each, written atomically;
each map's manifest row names its container (in ``outputs``) and its entry (``raw``), and the
container's metadata holds each entry's geometry. :func:`read_maps` reads either layout.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .confine import Confinement, inside
from .manifest import MANIFEST, fold, manifest_files
from .outputs import write_atomic

CHUNK_BYTES = 256 << 20
FOLDER = "maps"


class RawStore:
    """Gathers one run's raw maps into containers; thread-safe. Call :meth:`close` at the end
    (maps still gathered are written then)."""

    def __init__(self, out_dir: Path, name: str | None = None, chunk_bytes: int = CHUNK_BYTES):
        self.out_dir = out_dir
        self.name = name or uuid.uuid4().hex[:12]  # see manifest.CONTAINER
        self.chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self._chunk = 0
        self._arrays: dict[str, np.ndarray] = {}
        self._meta: dict[str, str] = {}
        self._size = 0
        inside(out_dir, self.container())  # maps/ a link leading out: refused before any work

    def container(self) -> str:
        """The current container, relative to the output folder."""
        return f"{FOLDER}/{self.name}-{self._chunk:05d}.safetensors"

    def add(self, entry: str, array: np.ndarray, geometry: dict[str, Any]) -> str:
        """Put a map under ``entry`` (replacing one of that name); the container it goes to."""
        with self._lock:
            if self._size >= self.chunk_bytes:
                self._write()
            self._arrays[entry] = np.ascontiguousarray(array, dtype=np.float32)
            self._meta[entry] = json.dumps(geometry)
            self._size += array.nbytes
            return self.container()

    def close(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        if not self._arrays:
            return
        from safetensors.numpy import save_file

        arrays, meta = self._arrays, self._meta
        path = inside(self.out_dir, self.container())
        write_atomic(path, lambda tmp: save_file(arrays, str(tmp), metadata=meta))
        self._arrays, self._meta, self._size = {}, {}, 0
        self._chunk += 1


@dataclass(frozen=True)
class RawEntry:
    """Where one map is: its picture's manifest row, its file, and its key in a container."""

    image: str
    method: str
    target: int
    file: Path
    key: str | None  # None: a .npy file of its own
    geometry: Path | None  # the geometry file of a .npy map


class RawMaps(Mapping[str, np.ndarray]):
    """A folder's raw maps by entry name (``sub/cat.guided``, ``sub/cat.guided.top2``), read
    when asked. ``entries`` says where each is; :meth:`find` looks one up by image and method;
    :meth:`geometry` gives the crop and scale that map a map onto its photo."""

    def __init__(self, entries: dict[str, RawEntry]) -> None:
        self.entries = entries
        self._open: dict[Path, Any] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        entry = self.entries[name]
        if entry.key is None:
            return np.load(entry.file)
        return self._container(entry.file).get_tensor(entry.key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, image: str, method: str, target: int | None = None) -> np.ndarray:
        """The map of ``image`` (as the manifest names it) by ``method`` (for ``target``)."""
        for name, entry in self.entries.items():
            wanted = target is None or entry.target == target
            if entry.image == image and entry.method == method and wanted:
                return self[name]
        raise KeyError(f"no raw map of {image} by {method}")

    def geometry(self, name: str) -> dict[str, Any]:
        """The crop box and scale that map entry ``name``'s map onto its photo."""
        entry = self.entries[name]
        if entry.key is None:
            assert entry.geometry is not None
            return json.loads(entry.geometry.read_text())
        metadata = self._container(entry.file).metadata() or {}
        return json.loads(metadata[entry.key])

    def _container(self, path: Path) -> Any:
        if path not in self._open:
            from safetensors import safe_open

            self._open[path] = safe_open(str(path), framework="numpy")
        return self._open[path]


def read_maps(out_dir: str | Path) -> RawMaps:
    """The raw maps that ``saliency explain --save-raw`` wrote into a folder.

    Args:
        out_dir: The run's output folder. The maps are found through its manifest (and any
            unmerged parts of a sharded run), whether they are ``.npy`` files or safetensors
            containers.

    Returns:
        A read-only mapping from entry name (``sub/cat.guided``, ``sub/cat.guided.top2``) to
        the map, a float32 array (C, h, w) at model resolution, read when asked;
        ``geometry(name)`` gives the crop and scale that map it onto its photo, and
        ``find(image, method)`` looks one up by the manifest's image and method.

    Raises:
        FileNotFoundError: The folder holds no manifest of a saliency run.
    """
    folder = Path(out_dir)
    files = manifest_files(folder) if folder.is_dir() else []
    if not any(path.is_file() for path in files):
        raise FileNotFoundError(f"{folder} holds no manifest ({MANIFEST}) of a saliency run")
    rows = fold(files)
    gate = Confinement(folder)  # the folder and each map folder resolved once
    entries: dict[str, RawEntry] = {}
    for row in rows.values():
        outputs = row.outputs
        if not row.is_ok or len(outputs) < 2 or row.method is None or row.target is None:
            continue
        if not all(gate.is_inside(name, follow=True) for name in outputs):
            continue  # a row naming files outside the folder: foreign, never read
        name = outputs[0].rsplit(".", 1)[0]
        image, method, target = row.image, row.method, row.target
        if outputs[1].endswith(".npy"):
            geometry = folder / outputs[2] if len(outputs) > 2 else None
            entries[name] = RawEntry(image, method, target, folder / outputs[1], None, geometry)
        elif row.extra.get("raw"):
            entries[name] = RawEntry(
                image, method, target, folder / outputs[1], str(row.extra["raw"]), None
            )
    return RawMaps(entries)
