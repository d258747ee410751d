"""Boundary thinning as the BSDS benchmark does it, and the edge NMS of the HED/RCF evaluations.

:func:`thin` is MATLAB's ``bwmorph(E, 'thin', Inf)``: the two-subiteration parallel thinning
of Lam, Lee & Suen (1992, p. 879; Guo & Hall's algorithm A1), repeated until nothing changes.
Its deletion tables are built here from the paper's conditions G1, G2, G3 / G3' and are the
tables of ``skimage.morphology.thin`` (which replicates ``bwmorph``); the tests check both.
Instead of re-scanning the whole image every subiteration, only pixels whose 3x3 neighbourhood
changed since they were last examined under the same table are examined again — the same
deletions, in the same order, at a fraction of the cost. :func:`thin_levels` thins all
threshold levels of one soft map at once (what the boundary benchmark needs per image): each
pixel holds one bit per level and the deletion rule is evaluated for 64 levels per word.

:func:`edge_nms` is the non-maximum suppression the HED / RCF evaluation scripts apply to a
soft edge map before the benchmark (Dollár's ``edgesNmsMex`` with the orientation from
smoothed second derivatives, ``convTri`` + ``gradient2``).

The loops are compiled with numba; arrays are numpy inside, tensors at the public API. torch
and scipy are imported where they are used: the wheel build compiles these kernels with numba
and numpy alone (``setup.py``, :func:`pixelwise.metrics.boundary_matching.compile_kernels`).
"""

from __future__ import annotations

import typing
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

if typing.TYPE_CHECKING:
    import torch

__all__ = [
    "edge_nms",
    "edge_nms_maps",
    "edge_orientation",
    "thin",
    "thin_levels",
    "thin_maps",
    "thinning_tables",
]

# Neighbour k (bit k of a neighbourhood code) is x_{k+1} of Lam, Lee & Suen: E, NE, N, NW, W, SW,
# S, SE ("N" is the row above). This is also skimage's correlation mask [[8,4,2],[16,0,1],[32,64,128]].
_DY = np.array([0, -1, -1, -1, 0, 1, 1, 1], dtype=np.int64)
_DX = np.array([1, 1, 0, -1, -1, -1, 0, 1], dtype=np.int64)


def thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two subiterations, bool [256] each, indexed by the 8-neighbour code."""
    code = np.arange(256)
    x = [((code >> k) & 1).astype(bool) for k in range(8)]  # x[0] = x1 ... x[7] = x8
    # G1: Hilditch crossing number X_H(p) == 1, b_i = !x_{2i-1} & (x_{2i} | x_{2i+1}).
    crossing = sum((~x[2 * i] & (x[2 * i + 1] | x[(2 * i + 2) % 8])).astype(int) for i in range(4))
    g1 = crossing == 1
    # G2: 2 <= min(n1, n2) <= 3.
    n1 = sum((x[2 * k] | x[2 * k + 1]).astype(int) for k in range(4))
    n2 = sum((x[2 * k + 1] | x[(2 * k + 2) % 8]).astype(int) for k in range(4))
    g2 = (np.minimum(n1, n2) >= 2) & (np.minimum(n1, n2) <= 3)
    # G3 (first subiteration): (x2 | x3 | !x8) & x1 == 0; G3' (second): (x6 | x7 | !x4) & x5 == 0.
    g3 = ~((x[1] | x[2] | ~x[7]) & x[0])
    g3p = ~((x[5] | x[6] | ~x[3]) & x[4])
    return g1 & g2 & g3, g1 & g2 & g3p


_LUT1, _LUT2 = (t.astype(np.uint8) for t in thinning_tables())


@numba.njit(cache=True)
def _thin_padded(buf, row, fg, nfg, lut1, lut2, offs, work, stamp, st, gone):
    """Thin the 0/1 uint8 image ``buf`` (flat, zero border of width 1, ``row`` columns) in place.

    ``fg[:nfg]`` lists its foreground pixels; deleted pixels are written to ``gone`` and their
    number is returned with the last stamp used. ``work`` holds 5 scratch arrays as long as
    ``buf``; ``stamp`` marks list membership per pass and is never cleared (stamps only grow).
    """
    cand, nxt, cnt, nxt_cnt, dele = work[0], work[1], work[2], work[3], work[4]
    o0, o1, o2, o3 = offs[0], offs[1], offs[2], offs[3]
    o4, o5, o6, o7 = offs[4], offs[5], offs[6], offs[7]
    n = 0
    # Initial candidates: foreground pixels with a background 4-neighbour (a pixel whose four
    # 4-neighbours are all set has crossing number 0 and is never deleted).
    for j in range(nfg):
        p = fg[j]
        if buf[p - 1] == 0 or buf[p + 1] == 0 or buf[p - row] == 0 or buf[p + row] == 0:
            cand[n] = p
            cnt[n] = 0
            n += 1
    ngone = 0
    sub = 0
    while n > 0:
        lut = lut1 if sub == 0 else lut2
        # Parallel subiteration: decide every candidate on the image before any deletion.
        for j in range(n):
            p = cand[j]
            code = (
                buf[p + o0]
                | (buf[p + o1] << 1)
                | (buf[p + o2] << 2)
                | (buf[p + o3] << 3)
                | (buf[p + o4] << 4)
                | (buf[p + o5] << 5)
                | (buf[p + o6] << 6)
                | (buf[p + o7] << 7)
            )
            dele[j] = lut[code]
        for j in range(n):
            if dele[j]:
                buf[cand[j]] = 0
                gone[ngone] = cand[j]
                ngone += 1
        st += 1
        m = 0
        # Neighbours of deleted pixels changed: examine them again under both tables.
        for j in range(n):
            if dele[j]:
                p = cand[j]
                for k in range(8):
                    q = p + offs[k]
                    if buf[q] and stamp[q] != st:
                        stamp[q] = st
                        nxt[m] = q
                        nxt_cnt[m] = 0
                        m += 1
        # An unchanged pixel kept by this table is examined once more, by the other table.
        for j in range(n):
            if not dele[j]:
                p = cand[j]
                c = cnt[j] + 1
                if c < 2 and stamp[p] != st:
                    stamp[p] = st
                    nxt[m] = p
                    nxt_cnt[m] = c
                    m += 1
        for j in range(m):
            cand[j] = nxt[j]
            cnt[j] = nxt_cnt[j]
        n = m
        sub ^= 1
    return ngone, st


@numba.njit(cache=True)
def _thin_maps(maps, lut1, lut2, offs):
    """Thin each of the bool maps [N, H, W] in place."""
    nmap, h, w = maps.shape
    row = w + 2
    size = (h + 2) * row
    buf = np.zeros(size, np.uint8)
    work = np.empty((5, size), np.int64)
    stamp = np.zeros(size, np.int64)
    fg = np.empty(size, np.int64)
    gone = np.empty(size, np.int64)
    st = 0
    for i in range(nmap):
        nfg = 0
        for y in range(h):
            for x in range(w):
                p = (y + 1) * row + x + 1
                buf[p] = maps[i, y, x]
                if buf[p]:
                    fg[nfg] = p
                    nfg += 1
        ngone, st = _thin_padded(buf, row, fg, nfg, lut1, lut2, offs, work, stamp, st, gone)
        for j in range(ngone):
            p = gone[j]
            maps[i, p // row - 1, p % row - 1] = False


@numba.njit(cache=True, inline="always")
def _two_of_four(a, b, c, d):
    """Bitwise: at least two of the four words have the bit set."""
    return (a & b) | (c & d) | ((a | b) & (c | d))


@numba.njit(cache=True, inline="always")
def _deletable(c, x1, x2, x3, x4, x5, x6, x7, x8, first):
    """Bitwise G1 & G2 & G3 (first subiteration) or G3' (second) of Lam, Lee & Suen, per level bit."""
    b1 = ~x1 & (x2 | x3)
    b2 = ~x3 & (x4 | x5)
    b3 = ~x5 & (x6 | x7)
    b4 = ~x7 & (x8 | x1)
    g1 = (b1 | b2 | b3 | b4) & ~_two_of_four(b1, b2, b3, b4)  # crossing number == 1
    p1 = x1 | x2
    p2 = x3 | x4
    p3 = x5 | x6
    p4 = x7 | x8
    q1 = x2 | x3
    q2 = x4 | x5
    q3 = x6 | x7
    q4 = x8 | x1
    g2 = (
        _two_of_four(p1, p2, p3, p4)
        & _two_of_four(q1, q2, q3, q4)
        & ~((p1 & p2 & p3 & p4) & (q1 & q2 & q3 & q4))
    )  # 2 <= min(n1, n2) <= 3
    if first:
        g3 = ~((x2 | x3 | ~x8) & x1)
    else:
        g3 = ~((x6 | x7 | ~x4) & x5)
    return c & g1 & g2 & g3


@numba.njit(cache=True, inline="always")
def _set_levels(bits, p, out):
    """Writes the levels (``64 * word + bit``, words relative to the first) set at pixel p to out; returns how many."""
    one = np.uint64(1)
    k = 0
    for j in range(bits.shape[1]):
        v = bits[p, j]
        b = 0
        while v != 0:
            if v & one:
                out[k] = j * 64 + b
                k += 1
            v >>= one
            b += 1
    return k


@numba.njit(cache=True, nogil=True)
def _thin_words(levels, n_levels, w0, w1, do_thin, offs):
    """Levels 64*w0 <= i < min(64*w1, n) thinned together, one bit per level: CSR counts per level and pixels.

    Each pixel holds one bit per level; a subiteration evaluates the deletion rule for all levels
    at once with bitwise operations. Only pixels next to a deletion of the last two
    subiterations are evaluated again (the rule of an unchanged neighbourhood gives the same
    answer), and the loop ends when two subiterations in a row delete nothing — per level this
    is MATLAB's loop, since a level that stopped changing stays unchanged.
    """
    h, w = levels.shape
    row = w + 2
    size = (h + 2) * row
    nw = w1 - w0
    one = np.uint64(1)
    full = ~np.uint64(0)
    bits = np.zeros((size, nw), np.uint64)
    act = np.empty(size, np.int64)
    nact = 0
    for y in range(h):
        for x in range(w):
            lv = min(levels[y, x], n_levels)
            p = (y + 1) * row + x + 1
            anyb = False
            for j in range(nw):
                k = lv - (w0 + j) * 64
                if k <= 0:
                    v = np.uint64(0)
                elif k >= 64:
                    v = full
                else:
                    v = (one << np.uint64(k)) - one
                bits[p, j] = v
                anyb |= v != 0
            if anyb:
                act[nact] = p
                nact += 1
    if do_thin:
        o0, o1, o2, o3 = offs[0], offs[1], offs[2], offs[3]
        o4, o5, o6, o7 = offs[4], offs[5], offs[6], offs[7]
        dbuf = np.empty((size, nw), np.uint64)
        stamp = np.zeros(size, np.int64)
        cur = np.empty(size, np.int64)
        prev = np.empty(size, np.int64)
        nprev = 0
        nxt = np.empty(size, np.int64)
        allfg = act[:nact].copy()
        sub = 0
        quiet = 0
        while True:
            first = sub % 2 == 0
            for t in range(nact):
                p = act[t]
                for j in range(nw):
                    dbuf[t, j] = _deletable(
                        bits[p, j],
                        bits[p + o0, j], bits[p + o1, j], bits[p + o2, j], bits[p + o3, j],
                        bits[p + o4, j], bits[p + o5, j], bits[p + o6, j], bits[p + o7, j],
                        first,
                    )  # fmt: skip
            ncur = 0
            for t in range(nact):
                p = act[t]
                dl = False
                for j in range(nw):
                    if dbuf[t, j] != 0:
                        bits[p, j] &= ~dbuf[t, j]
                        dl = True
                if dl:
                    cur[ncur] = p
                    ncur += 1
            quiet = quiet + 1 if ncur == 0 else 0
            if quiet >= 2:
                break
            sub += 1
            if sub == 1:
                # the second table has not looked at anything yet
                for t in range(allfg.size):
                    act[t] = allfg[t]
                nact = allfg.size
            else:
                nact = 0
                for src in range(2):
                    lst = cur if src == 0 else prev
                    nl = ncur if src == 0 else nprev
                    for t in range(nl):
                        p = lst[t]
                        for q in (
                            p,
                            p + o0,
                            p + o1,
                            p + o2,
                            p + o3,
                            p + o4,
                            p + o5,
                            p + o6,
                            p + o7,
                        ):
                            if stamp[q] != sub:
                                stamp[q] = sub
                                nz = False
                                for j in range(nw):
                                    nz |= bits[q, j] != 0
                                if nz:
                                    nxt[nact] = q
                                    nact += 1
                for t in range(nact):
                    act[t] = nxt[t]
            for t in range(ncur):
                prev[t] = cur[t]
            nprev = ncur
    # Collect: pixels per level, a counting sort (count, prefix sum, place); both passes read a
    # pixel's levels through the inlined _set_levels.
    i0 = w0 * 64
    n = min(w1 * 64, n_levels) - i0
    levels_at = np.empty(nw * 64, np.int64)
    count = np.zeros(n + 1, np.int64)
    for y in range(h):
        for x in range(w):
            for t in range(_set_levels(bits, (y + 1) * row + x + 1, levels_at)):
                count[levels_at[t] + 1] += 1
    for i in range(n):
        count[i + 1] += count[i]
    pix = np.empty(count[n], np.int64)
    fill = count[:n].copy()
    for y in range(h):
        for x in range(w):
            for t in range(_set_levels(bits, (y + 1) * row + x + 1, levels_at)):
                i = levels_at[t]
                pix[fill[i]] = y * w + x
                fill[i] += 1
    return count[1:] - count[:-1], pix


def _offsets(width: int) -> np.ndarray:
    return (_DY * (width + 2) + _DX).astype(np.int64)


def thin(mask: torch.Tensor) -> torch.Tensor:
    """MATLAB ``bwmorph(mask, 'thin', Inf)`` of each map: bool [..., H, W] -> bool [..., H, W]."""
    import torch

    if not isinstance(mask, torch.Tensor) or mask.dim() < 2:
        got = list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"thin: expected a tensor [..., H, W], got {got}")
    if mask.dtype != torch.bool:
        raise TypeError(f"thin: expected a bool mask, got {mask.dtype}")
    h, w = mask.shape[-2:]
    maps = thin_maps(mask.detach().cpu().reshape(-1, h, w).numpy())
    return torch.from_numpy(maps).reshape(mask.shape).to(mask.device)


def thin_maps(maps: np.ndarray) -> np.ndarray:
    """:func:`thin` on numpy: bool [N, H, W] -> thinned copy."""
    # C order: the layout the kernel was compiled (and cached) for.
    maps = np.array(maps, dtype=np.bool_, order="C", copy=True)
    if maps.size:
        _thin_maps(maps, _LUT1, _LUT2, _offsets(maps.shape[-1]))
    return maps


def thin_levels(
    levels: np.ndarray, n_levels: int, do_thin: bool = True, num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Thinned ``levels > i`` for every i < n_levels of an int map [H, W], as CSR (ptr [n+1], flat pixels y*W+x).

    Pixels of level i are ``pix[ptr[i]:ptr[i+1]]``, in no particular order. With a soft map ``p`` and
    ascending thresholds ``t``, ``levels = searchsorted(t, p, 'right')`` makes level i the map
    ``p >= t[i]``. All levels are thinned together, 64 per machine word (one word per thread).
    """
    levels = np.ascontiguousarray(levels, dtype=np.int32)
    if levels.ndim != 2:
        raise ValueError(f"thin_levels: expected levels [H, W], got shape {list(levels.shape)}")
    n_levels = int(n_levels)
    # 64 levels per machine word; the words are thinned independently (in parallel if asked).
    nwords = max(1, -(-n_levels // 64))
    parts = max(1, min(int(num_threads), nwords))
    bounds = np.linspace(0, nwords, parts + 1).round().astype(np.int64)
    offs = _offsets(levels.shape[1])

    def run(w0: int, w1: int) -> tuple[np.ndarray, np.ndarray]:
        return _thin_words(levels, n_levels, w0, w1, bool(do_thin), offs)

    ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if len(ranges) > 1:
        with ThreadPoolExecutor(len(ranges)) as pool:
            results = list(pool.map(lambda r: run(*r), ranges))
    else:
        results = [run(*r) for r in ranges]
    counts = np.concatenate([c for c, _ in results]) if results else np.zeros(0, np.int64)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pix = np.concatenate([p for _, p in results]) if results else np.zeros(0, np.int64)
    return ptr, pix


def _conv_tri(image: np.ndarray, r: int) -> np.ndarray:
    """Dollár's ``convTri``: separable triangle filter [1..r+1..1]/(r+1)^2, symmetric padding."""
    from scipy import ndimage as ndi

    if r == 0:
        return image
    f = np.concatenate([np.arange(1, r + 2), np.arange(r, 0, -1)]).astype(np.float32) / (r + 1) ** 2
    # scipy's "reflect" repeats the edge sample (d c b a | a b c d), MATLAB's 'symmetric'.
    out = ndi.convolve1d(image, f, axis=0, mode="reflect")
    return ndi.convolve1d(out, f, axis=1, mode="reflect")


def edge_orientation(edges: np.ndarray) -> np.ndarray:
    """Edge normal angle in [0, pi) of a soft edge map float32 [H, W], as the Structured Edge toolbox computes it."""
    e = _conv_tri(edges.astype(np.float32), 4)
    # gradient2 is MATLAB's gradient: central differences inside, one-sided at the border.
    oy, ox = np.gradient(e)
    _, oxx = np.gradient(ox)
    oyy, oxy = np.gradient(oy)
    with np.errstate(divide="ignore", invalid="ignore"):
        o = np.arctan(oyy * np.sign(-oxy) / (oxx + np.float32(1e-5)))
    return np.mod(o, np.float32(np.pi)).astype(np.float32)


@numba.njit(cache=True)
def _interp(img, h, w, x, y):
    x = np.float32(0.0) if x < 0 else (np.float32(w - 1.001) if x > w - 1.001 else x)
    y = np.float32(0.0) if y < 0 else (np.float32(h - 1.001) if y > h - 1.001 else y)
    x0 = int(x)
    y0 = int(y)
    dx0 = np.float32(x - x0)
    dy0 = np.float32(y - y0)
    dx1 = np.float32(1.0) - dx0
    dy1 = np.float32(1.0) - dy0
    return (
        img[y0, x0] * dx1 * dy1
        + img[y0, x0 + 1] * dx0 * dy1
        + img[y0 + 1, x0] * dx1 * dy0
        + img[y0 + 1, x0 + 1] * dx0 * dy0
    )


@numba.njit(cache=True)
def _nms(e0, o, r, s, m):
    h, w = e0.shape
    out = e0.copy()
    for y in range(h):
        for x in range(w):
            e = e0[y, x]
            if e == 0:
                continue
            e = e * m
            c = np.float32(np.cos(o[y, x]))
            sn = np.float32(np.sin(o[y, x]))
            for d in range(-r, r + 1):
                if d == 0:
                    continue
                if e < _interp(e0, h, w, np.float32(x + d * c), np.float32(y + d * sn)):
                    out[y, x] = 0
                    break
    s = min(s, w // 2, h // 2)
    for x in range(s):
        f = np.float32(x / s)
        for y in range(h):
            out[y, x] *= f
            out[y, w - 1 - x] *= f
    for y in range(s):
        f = np.float32(y / s)
        for x in range(w):
            out[y, x] *= f
            out[h - 1 - y, x] *= f
    return out


def edge_nms(
    edges: torch.Tensor,
    radius: int = 1,
    border: int = 5,
    multiplier: float = 1.01,
    presmooth: int = 1,
    quantize: bool = True,
) -> torch.Tensor:
    """Edge NMS of the HED/RCF evaluation scripts: soft edges [..., H, W] in [0, 1] -> thinned soft edges, same shape.

    As their ``edges_nms.m``: ``E = convTri(E, presmooth)``; orientation from ``convTri(E, 4)``;
    a pixel is kept if ``multiplier * E`` is not below the bilinear samples at +-1..radius along the
    normal; responses within ``border`` pixels of the image edge fade linearly to 0; with
    ``quantize`` the result is rounded to 8 bits as the PNG files those scripts write.
    """
    import torch

    if not isinstance(edges, torch.Tensor) or edges.dim() < 2 or not edges.is_floating_point():
        got = (
            f"{edges.dtype} {list(edges.shape)}"
            if isinstance(edges, torch.Tensor)
            else type(edges).__name__
        )
        raise ValueError(f"edge_nms: expected a float tensor [..., H, W], got {got}")
    h, w = edges.shape[-2:]
    maps = edges.detach().cpu().reshape(-1, h, w).numpy()
    out = edge_nms_maps(maps, radius, border, multiplier, presmooth, quantize)
    return torch.from_numpy(out).reshape(edges.shape).to(device=edges.device, dtype=edges.dtype)


def edge_nms_maps(
    maps: np.ndarray,
    radius: int = 1,
    border: int = 5,
    multiplier: float = 1.01,
    presmooth: int = 1,
    quantize: bool = True,
) -> np.ndarray:
    """:func:`edge_nms` on numpy: float [N, H, W] -> float32 [N, H, W]."""
    maps = np.ascontiguousarray(maps, dtype=np.float32)  # the layout the kernel is cached for
    out = np.empty_like(maps)
    for i, e in enumerate(maps):
        e = _conv_tri(e, presmooth)
        res = _nms(e, edge_orientation(e), int(radius), int(border), np.float32(multiplier))
        if quantize:
            # MATLAB uint8() rounds half away from zero.
            res = np.floor(np.clip(res, 0, 1) * np.float32(255) + np.float32(0.5)) / 255
        out[i] = res
    return out
