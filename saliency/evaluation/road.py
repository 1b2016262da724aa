"""ROAD's noisy linear imputation (Rong et al. 2022), batched on the model's device.

Each removed pixel takes the weighted mean of its 8 neighbours (1/6 for the 4 direct, 1/12 for
the 4 diagonal; fewer at borders, where the weights are renormalized), all removed pixels solved
together, then Gaussian noise is added to them. Multiplying each pixel's equation by its weight
sum makes the system symmetric positive definite (a graph Laplacian of the removed pixels,
anchored by the kept ones), so it is solved by conjugate gradients for every image, removal and
channel at once, each step one 3x3 convolution. The reference solves each image with a sparse
direct solver on the CPU, as we do on the CPU (faster there); ``tests/test_evaluation.py``
checks the two solvers agree with each other and with a hand-built system.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

WEIGHTS = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])


def impute_cg(
    images: torch.Tensor,
    removed: torch.Tensor,
    noise: float = 0.01,
    seeds: Sequence[int] | None = None,
    tolerance: float = 1e-5,
    max_steps: int = 2000,
) -> torch.Tensor:
    """The imputation by conjugate gradients, every image and channel at once (see
    :func:`impute`); each step is one 3x3 convolution, which suits a GPU."""
    n, c, h, w = images.shape
    kernel = WEIGHTS.to(images.device, images.dtype)[None, None]
    hole = removed[:, None].to(images.dtype).expand(n, c, h, w).reshape(n * c, 1, h, w)
    x = images.reshape(n * c, 1, h, w)

    def neighbours(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel, padding=1)

    degree = neighbours(torch.ones(1, 1, h, w, device=images.device, dtype=images.dtype))
    b = hole * neighbours(x * (1 - hole))

    def apply(z: torch.Tensor) -> torch.Tensor:  # A z on the removed pixels
        return hole * (degree * z - neighbours(z))

    z = hole * b / degree  # start: the kept neighbours' share
    r = b - apply(z)
    p = r.clone()
    rr = (r * r).sum((1, 2, 3), keepdim=True)
    scale = (b * b).sum((1, 2, 3), keepdim=True).clamp_min(1e-30)
    for _ in range(max_steps):
        if bool((rr <= tolerance**2 * scale).all()):
            break
        ap = apply(p)
        alpha = rr / (p * ap).sum((1, 2, 3), keepdim=True).clamp_min(1e-30)
        z = z + alpha * p
        r = r - alpha * ap
        rr_next = (r * r).sum((1, 2, 3), keepdim=True)
        p = r + (rr_next / rr.clamp_min(1e-30)) * p
        rr = rr_next
    out = x * (1 - hole) + hole * (z + _noise(images, seeds, noise).reshape(n * c, 1, h, w))
    return out.reshape(n, c, h, w)


def impute(
    images: torch.Tensor,
    removed: torch.Tensor,
    noise: float = 0.01,
    seeds: Sequence[int] | None = None,
) -> torch.Tensor:
    """``images`` (N, C, H, W) with the pixels where ``removed`` (N, H, W) is true replaced by
    their noisy linear imputation (noise s.d. ``noise``; each image's drawn on the CPU from its
    own seed in ``seeds``, so results do not depend on how images are batched). On a GPU by
    conjugate gradients for all at once; on the CPU by a sparse direct solve per distinct hole
    (the images that share one are its right-hand sides), which is faster there (0.4 s against
    1 to 2 s for 90% of a 224x224 image)."""
    if images.device.type != "cpu":
        return impute_cg(images, removed, noise, seeds)
    out = images.clone()
    holes = removed.cpu().numpy()
    groups = _same_holes(holes)  # one system, factored once, for each distinct hole
    jobs: list[tuple[list[torch.Tensor], np.ndarray, np.ndarray]] = []
    for group in groups:
        ys, xs = np.nonzero(holes[group[0]])  # row-major, as _system numbers them
        jobs.append(([out[i] for i in group], ys, xs))
    threads = min(len(jobs), torch.get_num_threads())
    if threads > 1:  # QDLDL lets go of the GIL: the systems are solved side by side,
        # the largest first so that no thread is left with one at the end
        jobs.sort(key=lambda job: -job[1].size)
        with ThreadPoolExecutor(threads, thread_name_prefix="saliency-road") as pool:
            list(pool.map(lambda job: _solve_direct(*job), jobs))
    else:
        for job in jobs:
            _solve_direct(*job)
    return out + removed[:, None].to(images.dtype) * _noise(images, seeds, noise)


def impute_seconds(image: torch.Tensor) -> float:
    """Seconds of one imputation of ``image`` (C, H, W) with half its pixels removed, as many
    at once as the CPU solves side by side: what an evaluation's estimate multiplies by its ROAD
    fractions (their mean cost, measured)."""
    import time

    height, width = image.shape[-2:]
    count = min(torch.get_num_threads(), 4) if image.device.type == "cpu" else 1
    removed = torch.rand(count, height, width, generator=torch.Generator().manual_seed(0)) < 0.5
    # a small one first: SciPy's import and first call are not what each imputation costs (the
    # first took 0.15 s against 0.07 s after, and the estimate said 28 s for 17 s of work)
    impute(image[None, :, :8, :8], removed[:1, :8, :8].to(image.device))
    started = time.perf_counter()
    impute(image[None].expand(count, -1, -1, -1), removed.to(image.device))
    if image.device.type == "cuda":
        torch.cuda.synchronize(image.device)
    return (time.perf_counter() - started) / count


def _noise(images: torch.Tensor, seeds: Sequence[int] | None, noise: float) -> torch.Tensor:
    n, c, h, w = images.shape
    draws = [
        torch.randn((c, h, w), generator=torch.Generator().manual_seed(seed))
        for seed in (seeds if seeds is not None else range(n))
    ]
    return torch.stack(draws).to(images.device, images.dtype) * noise


def _same_holes(holes: np.ndarray) -> list[list[int]]:
    """The copies (indices into ``holes``, N x H x W) grouped by identical holes, in order of
    first appearance. The system depends on the hole alone (the photo is its right-hand side),
    so a group is factored once: the centre baseline's holes are the same for every photo of a
    batch, which made its ROAD curves a quarter of an evaluation's solves with two methods."""
    groups: dict[bytes, list[int]] = {}
    for i, hole in enumerate(holes):
        groups.setdefault(np.packbits(hole).tobytes(), []).append(i)
    return list(groups.values())


_RHS_IMAGES = 16  # photos solved at a time against one factorization: memory stays flat


def _solve_direct(images: list[torch.Tensor], ys: np.ndarray, xs: np.ndarray) -> None:
    """Impute ``images`` (each C, H, W, on the CPU, with the same hole) in place at the pixels
    (``ys``, ``xs``), without noise: the system factored once and solved for every image and
    channel (a right-hand side each, 16 images at a time; a column's solution does not depend
    on the others, so it is the one a system of its own gives).

    The system is symmetric positive definite, so it is factored as L D L^T (QDLDL, in double
    precision, its pixels in an approximate minimum degree order; it lets go of the GIL). A
    curve of nine fractions of a 336x224 photo took 0.75 s on one thread against 1.17 s with
    SuperLU's LU in single precision, in a nested dissection order, refined once in double
    precision."""
    import qdldl

    channels, h, w = images[0].shape
    if ys.size == 0:
        return
    matrix, kept = _system(ys, xs, h, w)
    factors = qdldl.Solver(matrix, upper=True)
    flat = ys * w + xs
    for start in range(0, len(images), _RHS_IMAGES):
        chunk = images[start : start + _RHS_IMAGES]
        values = np.concatenate([image.numpy() for image in chunk]) * kept  # (C x k, H, W)
        rhs = _neighbours_share(values)[:, ys, xs]  # what the kept neighbours contribute
        solution = torch.from_numpy(np.stack([factors.solve(column) for column in rhs]))
        for number, image in enumerate(chunk):
            solved = solution[number * channels : (number + 1) * channels]
            image.view(channels, -1)[:, flat] = solved.to(image.dtype)


# the stencil's neighbours: (row offset, column offset, weight)
_STENCIL = [
    (dy, dx, float(WEIGHTS[dy + 1, dx + 1]))
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if WEIGHTS[dy + 1, dx + 1] != 0
]


def _system(ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> tuple[Any, np.ndarray]:
    """The upper triangle (CSC) of the sparse matrix of the removed pixels (``ys``, ``xs``, in
    row-major order, as ``np.nonzero`` gives them), and the kept pixels (H, W; 1 kept, 0
    removed). The matrix is symmetric, so a column is its pixel's row: the pixel's weight sum
    and minus the weights of its removed neighbours; the upper triangle holds the neighbours
    numbered before it (the row above, and the one to its left: the stencil's first four, in
    increasing order), then the pixel itself, so each column's rows are sorted. Built every
    column at once from the padded index image (no coordinates held in Python)."""
    import scipy.sparse as sparse

    count = ys.size
    if count > 1 and not (np.diff(ys * w + xs) > 0).all():
        raise ValueError("the removed pixels must come in row-major order (as np.nonzero)")
    index = np.full((h + 2, w + 2), -1, dtype=np.int64)  # a border of -1: outside the photo
    index[ys + 1, xs + 1] = np.arange(count)
    before = [(dy, dx, weight) for dy, dx, weight in _STENCIL if (dy, dx) < (0, 0)]
    rows = np.empty((count, len(before) + 1), dtype=np.int64)
    entries = np.empty(rows.shape)
    for number, (dy, dx, weight) in enumerate(before):
        rows[:, number] = index[ys + 1 + dy, xs + 1 + dx]
        entries[:, number] = -weight
    rows[:, -1] = np.arange(count)
    entries[:, -1] = _neighbours_share(np.ones((1, h, w)))[0, ys, xs]  # each one's weight sum
    present = rows >= 0
    starts = np.concatenate([[0], np.cumsum(present.sum(1))])
    matrix = sparse.csc_matrix((entries[present], rows[present], starts), shape=(count, count))
    return matrix, (index[1:-1, 1:-1] < 0).astype(np.float32)


def _neighbours_share(values: np.ndarray) -> np.ndarray:
    """(M, H, W) -> (M, H, W) float64: each pixel's weighted sum of its neighbours' values
    (none outside the photo), the stencil's directions added in order."""
    m, h, w = values.shape
    padded = np.zeros((m, h + 2, w + 2), dtype=values.dtype)
    padded[:, 1:-1, 1:-1] = values
    share = np.zeros((m, h, w))
    for dy, dx, weight in _STENCIL:
        share += weight * padded[:, 1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx]
    return share
