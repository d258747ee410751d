"""One-to-one correspondence of boundary pixels, as the BSDS benchmark's ``correspondPixels``.

The benchmark (``match.cc`` + the CSA assignment solver) pairs predicted with ground-truth
boundary pixels at Euclidean distance <= ``max_dist * sqrt(H^2 + W^2)``, with integer costs
``rint(100 * distance)`` and an outlier cost ``100 * maxDist`` per unmatched pixel, which is
more than any pair can cost: the solution has as many pairs as possible and, among those, the
smallest total distance. The counts follow from it, but *which* predicted pixels are paired
matters too, since a predicted pixel counts as correct if it is paired in any annotator.

Here that assignment is found without building the benchmark's dense outlier graph:

1. a maximum matching of the within-tolerance bipartite graph (augmenting paths from every
   unmatched predicted pixel, warm-started from the previous threshold — the result does not
   depend on the start);
2. its Dulmage-Mendelsohn split: predicted pixels reachable from an unmatched predicted pixel
   by an alternating path (``D``) are the only ones some maximum matching leaves unmatched;
   every other predicted pixel is matched in every maximum matching, and the ground-truth
   pixels adjacent to ``D`` (``A``) are always matched into ``D``;
3. a minimum-cost assignment of ``A`` into ``D`` only (shortest augmenting paths with
   potentials), which decides which pixels of ``D`` are matched.

Ties in total distance are broken by a pseudo-random 20-bit second cost per (annotator,
predicted pixel, ground-truth pixel) (:func:`tie_break`), compared lexicographically after the
distance, so the result does not depend on the order of the search. The benchmark breaks such
ties by the random outlier edges of its graph (runs differ by about 0.001 in ODS).

One deliberate difference: the benchmark's single objective ``distance + outlier cost`` would
drop one match if that saved more than ``100 * maxDist`` pixels of total distance — possible
only along an alternating chain of hundreds of exactly aligned pixels; here the number of
matches always comes first.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

__all__ = [
    "tolerance_px",
    "match_offsets",
    "tie_break",
    "correspond_pixels",
    "evaluate_levels",
    "compile_kernels",
]

_INF = np.iinfo(np.int64).max // 4
_TIE_BITS = 20


def tolerance_px(height: int, width: int, max_dist: float) -> float:
    """Matching radius in pixels: ``max_dist`` times the image diagonal, as ``correspondPixels``."""
    return float(max_dist) * math.sqrt(float(height * height + width * width))


def match_offsets(radius_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel offsets (dy [M], dx [M], cost [M]) within ``radius_px``, nearest first; cost = rint(100 * distance), as match.cc."""
    r = int(math.ceil(radius_px))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    d2 = (dy * dy + dx * dx).astype(np.float64)
    keep = ~(d2 > radius_px * radius_px)  # match.cc: skip if d2 > maxDist*maxDist
    cost = np.rint(np.sqrt(d2[keep]) * 100).astype(np.int64)
    # nearest first: every adjacency list built from these offsets is sorted by cost
    order = np.argsort(cost, kind="stable")
    return dy[keep][order].astype(np.int64), dx[keep][order].astype(np.int64), cost[order]


@numba.njit(cache=True)
def _tie(k, p, g):
    x = np.uint64(p) * np.uint64(0x9E3779B97F4A7C15)
    x ^= np.uint64(g) * np.uint64(0xC2B2AE3D27D4EB4F)
    x ^= np.uint64(k + 1) * np.uint64(0x165667B19E3779F9)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return np.int64(x >> np.uint64(64 - _TIE_BITS))


@numba.njit(cache=True)
def _tie_many(k, p, g):
    out = np.empty(p.size, np.int64)
    for i in range(p.size):
        out[i] = _tie(k, p[i], g[i])
    return out


def tie_break(annotator: int, pred_pix: np.ndarray, gt_pix: np.ndarray) -> np.ndarray:
    """Second cost in [0, 2^20) of pairing flat pixels pred_pix [N] and gt_pix [N] (y*W+x) of one annotator."""
    p = np.ascontiguousarray(pred_pix, dtype=np.int64).ravel()
    g = np.ascontiguousarray(gt_pix, dtype=np.int64).ravel()
    return _tie_many(int(annotator), p, g)


# ----------------------------------------------------------------------------- graph building


@numba.njit(cache=True)
def _build_graph(upix, gptr, gpix, h, w, dy, dx, cost, k0):
    """Edges pred node -> gt node (global id) for every annotator, CSR per (annotator, pred) + reverse CSR per gt.

    Found from the gt side (ground truth is sparser than the union of predicted pixels). Every
    list is sorted by cost (the solvers stop scanning a list early on that).
    """
    nu = upix.size
    nk = gptr.size - 1
    ng = gpix.size
    umap = np.full(h * w, -1, np.int64)
    for u in range(nu):
        umap[upix[u]] = u
    # Reverse CSR first: gt g -> preds within the radius, in offset order.
    rptr = np.zeros(ng + 1, np.int64)
    for g in range(ng):
        gy = gpix[g] // w
        gx = gpix[g] % w
        n = 0
        for o in range(dy.size):
            y = gy - dy[o]
            x = gx - dx[o]
            if y >= 0 and y < h and x >= 0 and x < w and umap[y * w + x] >= 0:
                n += 1
        rptr[g + 1] = rptr[g] + n
    ne = rptr[ng]
    ru = np.empty(ne, np.int64)
    rc = np.empty(ne, np.int64)
    rt = np.empty(ne, np.int64)
    gk = np.empty(max(ng, 1), np.int64)
    for k in range(nk):
        for g in range(gptr[k], gptr[k + 1]):
            gk[g] = k
    for g in range(ng):
        gy = gpix[g] // w
        gx = gpix[g] % w
        f = rptr[g]
        for o in range(dy.size):
            y = gy - dy[o]
            x = gx - dx[o]
            if y >= 0 and y < h and x >= 0 and x < w:
                u = umap[y * w + x]
                if u >= 0:
                    ru[f] = u
                    rc[f] = cost[o]
                    rt[f] = _tie(gk[g] + k0, upix[u], gpix[g])
                    f += 1
    # Forward CSR per (annotator, pred), by counting sort of the reverse edges.
    uptr = np.zeros((nk, nu + 1), np.int64)
    cnt = np.zeros((nk, nu), np.int64)
    for g in range(ng):
        for e in range(rptr[g], rptr[g + 1]):
            cnt[gk[g], ru[e]] += 1
    t = 0
    for k in range(nk):
        for u in range(nu):
            uptr[k, u] = t
            t += cnt[k, u]
        uptr[k, nu] = t
    fill = np.empty((nk, nu), np.int64)
    for k in range(nk):
        for u in range(nu):
            fill[k, u] = uptr[k, u]
    eg = np.empty(ne, np.int64)
    ec = np.empty(ne, np.int64)
    et = np.empty(ne, np.int64)
    egt = np.empty(ne, np.int64)  # gt of each reverse edge
    for g in range(ng):
        for e in range(rptr[g], rptr[g + 1]):
            egt[e] = g
    # Distribute the reverse edges in order of cost, so the forward lists are sorted by cost too.
    cmax = 0
    for e in range(ne):
        cmax = max(cmax, rc[e])
    bucket = np.zeros(cmax + 2, np.int64)
    for e in range(ne):
        bucket[rc[e] + 1] += 1
    for c in range(cmax + 1):
        bucket[c + 1] += bucket[c]
    order = np.empty(ne, np.int64)
    for e in range(ne):
        order[bucket[rc[e]]] = e
        bucket[rc[e]] += 1
    for t in range(ne):
        e = order[t]
        g = egt[e]
        k = gk[g]
        u = ru[e]
        f = fill[k, u]
        eg[f] = g
        ec[f] = rc[e]
        et[f] = rt[e]
        fill[k, u] = f + 1
    return uptr, eg, ec, et, rptr, ru, rc, rt


# ----------------------------------------------------------------------------- binary heap


@numba.njit(cache=True)
def _less(a1, a2, b1, b2):
    return a1 < b1 or (a1 == b1 and a2 < b2)


@numba.njit(cache=True, inline="always")
def _swap3(h1, h2, hv, i, j):
    """Swap entries i and j of the three parallel heap arrays (inlined: no call in the heap loops)."""
    h1[i], h1[j] = h1[j], h1[i]
    h2[i], h2[j] = h2[j], h2[i]
    hv[i], hv[j] = hv[j], hv[i]


@numba.njit(cache=True)
def _heap_push(h1, h2, hv, n, d1, d2, v):
    i = n
    h1[i] = d1
    h2[i] = d2
    hv[i] = v
    while i > 0:
        par = (i - 1) >> 1
        if _less(h1[i], h2[i], h1[par], h2[par]):
            _swap3(h1, h2, hv, i, par)
            i = par
        else:
            break
    return n + 1


@numba.njit(cache=True)
def _heap_pop(h1, h2, hv, n):
    """Remove the minimum (moved to index n-1 of the arrays); returns the new size."""
    n -= 1
    _swap3(h1, h2, hv, 0, n)
    i = 0
    while True:
        a = 2 * i + 1
        if a >= n:
            break
        b = a + 1
        c = a
        if b < n and _less(h1[b], h2[b], h1[a], h2[a]):
            c = b
        if _less(h1[c], h2[c], h1[i], h2[i]):
            _swap3(h1, h2, hv, i, c)
            i = c
        else:
            break
    return n


# ----------------------------------------------------------------------------- matching state


@numba.njit(cache=True)
def _augment_from(k, root, uptr, eg, mu, mg, vis, vst, it, su, sg):
    """Depth-first search for an augmenting path from free pred ``root``; augment and return True if found.

    Preds already marked ``vis == vst`` are not entered. A pred first checks all its gts for a
    free one (look-ahead) before descending through matched ones.
    """
    vis[root] = vst
    it[root] = -1
    d = 0
    su[0] = root
    while d >= 0:
        u = su[d]
        lo = uptr[k, u]
        hi = uptr[k, u + 1]
        if it[u] < 0:
            for e in range(lo, hi):
                g = eg[e]
                if mg[g] < 0:
                    sg[d] = g
                    for t in range(d + 1):
                        mu[su[t]] = sg[t]
                        mg[sg[t]] = su[t]
                    return True
            it[u] = lo
        descended = False
        while it[u] < hi:
            e = it[u]
            it[u] = e + 1
            g = eg[e]
            u2 = mg[g]
            if vis[u2] != vst:
                vis[u2] = vst
                it[u2] = -1
                sg[d] = g
                d += 1
                su[d] = u2
                descended = True
                break
        if not descended:
            d -= 1
    return False


@numba.njit(cache=True)
def _max_matching(k, nu, level, uptr, eg, mu, mg, vis, it, su, sg, queue, mark, seen, stamp, alist):
    """Grow the matching (mu [nU], mg [NG]) of annotator k on the active preds ``level`` to a maximum one, then split it.

    Augmenting paths are searched from each free pred in rounds that share the visited marks
    (a search that fails before any success in its round proves, by Berge's theorem, that the
    pred stays unmatchable: it is dropped). The final BFS from the free preds is the
    Dulmage-Mendelsohn search: on return ``queue[:nd]`` holds the preds reachable from a free
    pred by alternating paths (D, marked ``mark == s``) and ``alist[:na]`` their gt neighbours
    (A, marked ``seen == s``). Returns (nd, na, s); ``stamp[0]`` is the running stamp.
    """
    # Greedy start: a free pred takes a free gt neighbour.
    nfree = 0
    for j in range(level.size):
        u = level[j]
        if mu[u] >= 0 or uptr[k, u + 1] == uptr[k, u]:
            continue
        for e in range(uptr[k, u], uptr[k, u + 1]):
            g = eg[e]
            if mg[g] < 0:
                mg[g] = u
                mu[u] = g
                break
        if mu[u] < 0:
            queue[nfree] = u
            nfree += 1
    while nfree > 0:
        stamp[0] += 1
        vst = stamp[0]
        success = False
        keep = 0
        for j in range(nfree):
            u = queue[j]
            if _augment_from(k, u, uptr, eg, mu, mg, vis, vst, it, su, sg):
                success = True
            elif success:
                queue[keep] = u  # may have failed on marks left by a success: retry
                keep += 1
        if not success:
            break
        nfree = keep
    # Dulmage-Mendelsohn: BFS from the free preds along alternating paths. The free preds are
    # listed in queue, which the search then compacts and extends in place (it writes entry
    # nq <= j only after reading start j).
    stamp[0] += 1
    st = stamp[0]
    nfree = 0
    for j in range(level.size):
        u = level[j]
        if mu[u] < 0:
            queue[nfree] = u
            nfree += 1
    nq, na = _alternating_reach(queue, nfree, uptr[k], eg, mg, mark, seen, st, queue, alist)
    return nq, na, st


@numba.njit(cache=True)
def _max_matching_in(k, nu, level, uptr, eg, mu, mg, wk):
    """:func:`_max_matching` with its scratch arrays taken from the workspace ``wk`` (:func:`_alloc`)."""
    return _max_matching(
        k, nu, level, uptr, eg, mu, mg, wk[0][0], wk[0][1], wk[0][2], wk[0][3], wk[0][4],
        wk[0][5], wk[0][6], wk[4][1:2], wk[0][7],
    )  # fmt: skip


@numba.njit(cache=True)
def _alternating_reach(starts, nstart, ptr, nbr, m_nbr, mark, seen, stamp, queue, alist):
    """Dulmage-Mendelsohn part of a maximum matching, from the free nodes ``starts[:nstart]`` of one side.

    Nodes of that side reachable by alternating paths (free start, any edge, matched edge back)
    go to ``queue`` (marked in ``mark``), their neighbours on the other side to ``alist``
    (marked in ``seen``). Returns (number reached, number of neighbours).
    """
    nq = 0
    for j in range(nstart):
        x = starts[j]
        if ptr[x + 1] > ptr[x]:
            mark[x] = stamp
            queue[nq] = x
            nq += 1
    na = 0
    head = 0
    while head < nq:
        x = queue[head]
        head += 1
        for e in range(ptr[x], ptr[x + 1]):
            y = nbr[e]
            if seen[y] != stamp:
                seen[y] = stamp
                alist[na] = y
                na += 1
                x2 = m_nbr[y]  # matched, since the matching is maximum
                if mark[x2] != stamp:
                    mark[x2] = stamp
                    queue[nq] = x2
                    nq += 1
    return nq, na


# Column record of the assignment solver (one cache line per column).
_PC1, _PC2, _DC1, _DC2, _DSTAMP, _DONE, _PROW = 0, 1, 2, 3, 4, 5, 6


@numba.njit(cache=True)
def _hungarian(
    rows, nrows, ptr, nbr, c1, c2, m_row, m_col, col_ok, stamp, rp, cd, run,
    rlist, rd1, rd2, fin, h1, h2, hv,
):  # fmt: skip
    """Minimum-cost assignment of every row in ``rows[:nrows]`` to a distinct column with col_ok == stamp.

    Costs are pairs (c1, c2) compared lexicographically; the rows and their columns must be
    unmatched on entry and a complete assignment must exist. Jonker-Volgenant: row reduction,
    augmenting row reduction, then shortest augmenting paths with potentials (Dijkstra on
    reduced costs to the nearest free column) for the rows still free. ``rp[r]`` holds a row's
    potential, ``cd[c]`` a column's potential, search distance, stamps and predecessor row;
    ``run[0]`` is the running search stamp. Free columns keep potential 0, the highest.
    """
    for j in range(nrows):
        for e in range(ptr[rows[j]], ptr[rows[j] + 1]):
            c = nbr[e]
            if col_ok[c] == stamp:
                cd[c, _PC1] = 0
                cd[c, _PC2] = 0
    # Row reduction: a row's potential is minus its cheapest edge, so that edge is tight; a
    # row whose cheapest column is still free takes it.
    for j in range(nrows):
        r = rows[j]
        m1 = _INF
        m2 = _INF
        best = -1
        for e in range(ptr[r], ptr[r + 1]):
            if c1[e] > m1:
                break  # lists are sorted by c1
            c = nbr[e]
            if col_ok[c] == stamp and _less(c1[e], c2[e], m1, m2):
                m1 = c1[e]
                m2 = c2[e]
                best = c
        rp[r, 0] = -m1
        rp[r, 1] = -m2
        if best >= 0 and m_col[best] < 0:
            m_col[best] = r
            m_row[r] = best
    # Augmenting row reduction: a free row takes its best column at the price that makes it
    # indifferent to its second best, evicting the holder, which tries in turn. Column
    # potentials only decrease, so reduced costs stay >= 0 and pairs stay tight.
    nfree = 0
    for j in range(nrows):
        if m_row[rows[j]] < 0:
            rlist[nfree] = rows[j]
            nfree += 1
    steps = 0
    head = 0
    while head < nfree and steps < 4 * nrows + 16:
        r = rlist[head]
        head += 1
        steps += 1
        a1 = _INF
        a2 = _INF
        b1 = _INF
        b2 = _INF
        j1 = -1
        j2 = -1
        for e in range(ptr[r], ptr[r + 1]):
            if c1[e] > b1:
                break  # column potentials are <= 0: c1 - pc1 >= c1 > second best
            c = nbr[e]
            if col_ok[c] != stamp:
                continue
            v1 = c1[e] - cd[c, _PC1]
            v2 = c2[e] - cd[c, _PC2]
            if _less(v1, v2, a1, a2):
                b1, b2, j2 = a1, a2, j1
                a1, a2, j1 = v1, v2, c
            elif _less(v1, v2, b1, b2):
                b1, b2, j2 = v1, v2, c
        i0 = m_col[j1]
        if j2 >= 0 and _less(a1, a2, b1, b2):
            cd[j1, _PC1] -= b1 - a1
            cd[j1, _PC2] -= b2 - a2
            rp[r, 0] = -b1
            rp[r, 1] = -b2
        else:
            if j2 >= 0 and i0 >= 0:  # tie: the second best is as good
                j1 = j2
                i0 = m_col[j2]
            rp[r, 0] = -a1
            rp[r, 1] = -a2
        m_row[r] = j1
        m_col[j1] = r
        if i0 >= 0:
            m_row[i0] = -1
            head -= 1
            rlist[head] = i0
    for j in range(nrows):
        r = rows[j]
        if m_row[r] >= 0:
            continue
        # potential of a free row: minus its cheapest reduced edge, so its edges have rc >= 0
        m1 = _INF
        m2 = _INF
        for e in range(ptr[r], ptr[r + 1]):
            if c1[e] > m1:
                break
            c = nbr[e]
            if col_ok[c] == stamp:
                v1 = c1[e] - cd[c, _PC1]
                v2 = c2[e] - cd[c, _PC2]
                if _less(v1, v2, m1, m2):
                    m1 = v1
                    m2 = v2
        rp[r, 0] = -m1
        rp[r, 1] = -m2
        run[0] += 1
        ds = run[0]
        nrow = 1
        rlist[0] = r
        rd1[0] = 0
        rd2[0] = 0
        nh = 0
        nfin = 0
        cur = 0
        found = -1
        # Distance to the nearest free column seen so far: matched columns at or beyond it
        # can never be popped before that free column, so they are not queued.
        bound1 = _INF
        bound2 = _INF
        while True:
            x = rlist[cur]
            base1 = rd1[cur] + rp[x, 0]
            base2 = rd2[cur] + rp[x, 1]
            for e in range(ptr[x], ptr[x + 1]):
                if base1 + c1[e] > bound1:
                    break  # sorted lists, potentials <= 0: no closer column further on
                c = nbr[e]
                if col_ok[c] != stamp or cd[c, _DONE] == ds:
                    continue
                n1 = base1 + c1[e] - cd[c, _PC1]
                n2 = base2 + c2[e] - cd[c, _PC2]
                if cd[c, _DSTAMP] != ds or _less(n1, n2, cd[c, _DC1], cd[c, _DC2]):
                    free = m_col[c] < 0
                    if not free and not _less(n1, n2, bound1, bound2):
                        continue
                    cd[c, _DSTAMP] = ds
                    cd[c, _DC1] = n1
                    cd[c, _DC2] = n2
                    cd[c, _PROW] = x
                    if free:
                        bound1 = n1
                        bound2 = n2
                    nh = _heap_push(h1, h2, hv, nh, n1, n2, c)
            c = -1
            while nh > 0:
                nh = _heap_pop(h1, h2, hv, nh)
                y = hv[nh]
                if cd[y, _DONE] == ds or h1[nh] != cd[y, _DC1] or h2[nh] != cd[y, _DC2]:
                    continue
                c = y
                break
            if c < 0:
                raise RuntimeError("boundary matching: no augmenting path for a row")
            cd[c, _DONE] = ds
            fin[nfin] = c
            nfin += 1
            if m_col[c] < 0:
                found = c
                break
            rlist[nrow] = m_col[c]
            rd1[nrow] = cd[c, _DC1]
            rd2[nrow] = cd[c, _DC2]
            cur = nrow
            nrow += 1
        b1 = cd[found, _DC1]
        b2 = cd[found, _DC2]
        # Potentials: pi -= (D - d) on every node reached closer than D keeps reduced costs >= 0
        # and makes the path found tight.
        for t in range(nfin):
            c = fin[t]
            if _less(cd[c, _DC1], cd[c, _DC2], b1, b2):
                cd[c, _PC1] -= b1 - cd[c, _DC1]
                cd[c, _PC2] -= b2 - cd[c, _DC2]
        for t in range(nrow):
            if _less(rd1[t], rd2[t], b1, b2):
                rp[rlist[t], 0] -= b1 - rd1[t]
                rp[rlist[t], 1] -= b2 - rd2[t]
        c = found
        while True:
            x = cd[c, _PROW]
            prev = m_row[x]
            m_row[x] = c
            m_col[c] = x
            if x == r:
                break
            c = prev


@numba.njit(cache=True)
def _alloc(nu, ng, ne):
    """Scratch arrays of the matchers: (S [13, M] int64 rows, row potentials [M, 2], column records [M, 8], heap [3, E+1], stamps [2]).

    Rows of S: 0 visited stamps, 1 edge iterators, 2 / 3 search stacks, 4 queue, 5 mark
    (searched side), 6 seen (other side), 7 alist, 8 rlist, 9 / 10 row distances, 11 finished
    columns, 12 second mark. Stamps: 0 running search stamp, 1 running mark / seen stamp.
    """
    m1 = max(nu, ng, 1) + 1
    s = np.empty((13, m1), np.int64)
    s[0] = 0
    s[5] = 0
    s[6] = 0
    s[12] = 0
    return (
        s,
        np.zeros((m1, 2), np.int64),
        np.zeros((m1, 8), np.int64),
        np.empty((3, ne + 1), np.int64),
        np.zeros(2, np.int64),
    )


@numba.njit(cache=True)
def _solve_block(rows, nrows, ptr, nbr, c1, c2, m_row, m_col, col_ok, stamp, wk):
    _hungarian(
        rows, nrows, ptr, nbr, c1, c2, m_row, m_col, col_ok, stamp, wk[1], wk[2], wk[4][0:1],
        wk[0][8], wk[0][9], wk[0][10], wk[0][11], wk[3][0], wk[3][1], wk[3][2],
    )  # fmt: skip


@numba.njit(cache=True)
def _match_level(k, nu, level, graph, mu, mg, wk):
    """Maximum matching of annotator k on the active preds ``level`` whose matched preds are those of a min-cost one.

    Only the Dulmage-Mendelsohn block (A gts into D preds) decides which preds are matched, so
    only it is solved at minimum cost; elsewhere the pairs are those of the augmenting-path search.
    """
    uptr, eg, ec, et, rptr, ru, rc, rt = graph
    nd, na, st = _max_matching_in(k, nu, level, uptr, eg, mu, mg, wk)
    if na == 0:
        return
    alist = wk[0][7]
    for j in range(na):
        g = alist[j]
        mu[mg[g]] = -1
        mg[g] = -1
    _solve_block(alist, na, rptr, ru, rc, rt, mg, mu, wk[0][5], st, wk)


@numba.njit(cache=True)
def _match_full(nu, ng, graph, mu, mg, wk):
    """Min-cost maximum matching of one annotator (k=0) on all preds: every DM block solved at minimum cost."""
    uptr, eg, ec, et, rptr, ru, rc, rt = graph
    level = np.arange(nu)
    u0 = uptr[0]
    # D preds (reached from free preds) and A gts, from the last BFS of Hopcroft-Karp.
    nd, na, st_p = _max_matching_in(0, nu, level, uptr, eg, mu, mg, wk)
    a_gt = wk[0][7][:na].copy()
    # D gts (reached from free gts) and A preds; marks in a second pair of arrays.
    wk[4][1] += 1
    st_g = wk[4][1]
    gmark = np.zeros(max(ng, 1), np.int64)
    umark = np.zeros(max(nu, 1), np.int64)
    gfree = np.empty(max(ng, 1), np.int64)
    ngfree = 0
    for g in range(ng):
        if mg[g] < 0:
            gfree[ngfree] = g
            ngfree += 1
    ndg, nap = _alternating_reach(
        gfree, ngfree, rptr, ru, mu, gmark, umark, st_g, wk[0][4], wk[0][7]
    )
    a_pred = wk[0][7][:nap].copy()
    # C: matched nodes in neither part; solved as rows C gts into C preds.
    cmark = wk[0][12]
    wk[4][1] += 1
    st_c = wk[4][1]
    c_gt = np.empty(max(ng, 1), np.int64)
    nc = 0
    for g in range(ng):
        u = mg[g]
        if u >= 0 and wk[0][6][g] != st_p and gmark[g] != st_g:
            c_gt[nc] = g
            nc += 1
            cmark[u] = st_c
    for j in range(nc):
        mu[mg[c_gt[j]]] = -1
        mg[c_gt[j]] = -1
    _solve_block(c_gt, nc, rptr, ru, rc, rt, mg, mu, cmark, st_c, wk)
    # A gts into D preds.
    for j in range(na):
        g = a_gt[j]
        mu[mg[g]] = -1
        mg[g] = -1
    _solve_block(a_gt, na, rptr, ru, rc, rt, mg, mu, wk[0][5], st_p, wk)
    # A preds into D gts (rows are preds now).
    for j in range(nap):
        u = a_pred[j]
        mg[mu[u]] = -1
        mu[u] = -1
    _solve_block(a_pred, nap, u0, eg, ec, et, mu, mg, gmark, st_g, wk)


@numba.njit(cache=True)
def _pred_nodes(h, w, pix):
    """Node id per level entry and pixel per node, for the pixels on at some level (ids in raster order)."""
    uid = np.full(h * w, -1, np.int64)
    for j in range(pix.size):
        uid[pix[j]] = -2
    nu = 0
    for p in range(h * w):
        if uid[p] == -2:
            uid[p] = nu
            nu += 1
    upix = np.empty(nu, np.int64)
    for p in range(h * w):
        if uid[p] >= 0:
            upix[uid[p]] = p
    luid = np.empty(pix.size, np.int64)
    for j in range(pix.size):
        luid[j] = uid[pix[j]]
    return luid, upix


@numba.njit(cache=True)
def _near_preds(graph, nu):
    """1 for the preds with a gt pixel of some annotator in reach (only those can be matched)."""
    uptr = graph[0]
    near = np.zeros(nu, np.uint8)
    for k in range(uptr.shape[0]):
        for u in range(nu):
            if uptr[k, u + 1] > uptr[k, u]:
                near[u] = 1
    return near


@numba.njit(cache=True, nogil=True)
def _evaluate_group(ks, nu, gptr, ptr, luid, graph, near, approximate):
    """Annotators ``ks`` over all levels: matched-gt counts [len(ks), T] and, per (annotator, level), matched preds (CSR).

    The matching of each annotator is carried from one level to the next (preds that went off
    leave it); the result does not depend on it, only the work does. With ``approximate`` the
    counts are of gt pixels with any active pred in reach, and no preds are listed.
    """
    uptr, eg, ec, et, rptr, ru, rc, rt = graph
    ng = gptr[-1]
    nt = ptr.size - 1
    cnt = np.zeros((ks.size, nt), np.int64)
    mptr = np.zeros((ks.size, nt + 1), np.int64)
    cap = 1024
    out = np.empty(cap, np.int64)
    nout = 0
    wk = _alloc(nu, ng, eg.size)
    act = np.zeros(nu, np.uint8)
    nlev = np.empty(nu, np.int64)
    for j in range(ks.size):
        k = ks[j]
        mu = np.full(nu, -1, np.int64)
        mg = np.full(max(ng, 1), -1, np.int64)
        prev = luid[0:0]
        for i in range(nt):
            level = luid[ptr[i] : ptr[i + 1]]
            for t in range(prev.size):
                act[prev[t]] = 0
            for t in range(level.size):
                act[level[t]] = 1
            for t in range(prev.size):
                u = prev[t]
                if act[u] == 0 and mu[u] >= 0:
                    mg[mu[u]] = -1
                    mu[u] = -1
            prev = level
            mptr[j, i] = nout
            if approximate:
                for g in range(gptr[k], gptr[k + 1]):
                    for e in range(rptr[g], rptr[g + 1]):
                        if act[ru[e]]:
                            cnt[j, i] += 1
                            break
                continue
            nn = 0
            for t in range(level.size):
                if near[level[t]]:
                    nlev[nn] = level[t]
                    nn += 1
            active = nlev[:nn]
            _match_level(k, nu, active, graph, mu, mg, wk)
            if nout + nn > cap:
                cap = max(2 * cap, nout + nn)
                grown = np.empty(cap, np.int64)
                grown[:nout] = out[:nout]
                out = grown
            for t in range(nn):
                u = active[t]
                if mu[u] >= 0:
                    out[nout] = u
                    nout += 1
            cnt[j, i] = nout - mptr[j, i]
        mptr[j, nt] = nout
        for t in range(prev.size):
            act[prev[t]] = 0
    return cnt, mptr, out[:nout].copy()


@numba.njit(cache=True)
def _combine(ptr, luid, nu, near, mptr, matched, approximate):
    """cntP per level: preds matched in at least one annotator (approximate: preds with a gt in reach)."""
    nt = ptr.size - 1
    cntp = np.zeros(nt, np.int64)
    seen = np.full(nu, -1, np.int64)
    for i in range(nt):
        if approximate:
            for t in range(ptr[i], ptr[i + 1]):
                cntp[i] += near[luid[t]]
            continue
        for k in range(mptr.shape[0]):
            for t in range(mptr[k, i], mptr[k, i + 1]):
                u = matched[t]
                if seen[u] != i:
                    seen[u] = i
                    cntp[i] += 1
    return cntp


@numba.njit(cache=True)
def _correspond(h, w, pix, gpix, dy, dx, cost, k0):
    """Partner pixel (flat, -1 if none) of every pred pixel [P] and gt pixel [G] of one pair of maps."""
    luid, upix = _pred_nodes(h, w, pix)
    nu = upix.size
    gptr = np.array([0, gpix.size], np.int64)
    graph = _build_graph(upix, gptr, gpix, h, w, dy, dx, cost, k0)
    wk = _alloc(nu, gpix.size, graph[1].size)
    mu = np.full(nu, -1, np.int64)
    mg = np.full(max(gpix.size, 1), -1, np.int64)
    _match_full(nu, gpix.size, graph, mu, mg, wk)
    pp = np.full(pix.size, -1, np.int64)
    for j in range(pix.size):
        g = mu[luid[j]]
        if g >= 0:
            pp[j] = gpix[g]
    gp = np.full(gpix.size, -1, np.int64)
    for g in range(gpix.size):
        if mg[g] >= 0:
            gp[g] = upix[mg[g]]
    return pp, gp


def correspond_pixels(
    pred: np.ndarray, gt: np.ndarray, max_dist: float = 0.0075, annotator: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pair boundary pixels of pred and gt (bool [H, W]) as ``correspondPixels``: partner maps int64 [H, W] each.

    ``match_pred[y, x]`` is the flat index (y'*W + x') of the gt pixel paired with predicted pixel
    (x, y), -1 if it is unpaired or not a boundary pixel; ``match_gt`` likewise. ``annotator``
    selects the tie-breaking stream (:func:`tie_break`).
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(
            f"correspond_pixels: expected pred and gt of equal shape [H, W], got {list(pred.shape)} "
            f"and {list(gt.shape)}"
        )
    h, w = pred.shape
    dy, dx, cost = match_offsets(tolerance_px(h, w, max_dist))
    pix = np.flatnonzero(pred).astype(np.int64)
    gpix = np.flatnonzero(gt).astype(np.int64)
    pp, gp = _correspond(h, w, pix, gpix, dy, dx, cost, int(annotator))
    match_pred = np.full(h * w, -1, np.int64)
    match_gt = np.full(h * w, -1, np.int64)
    match_pred[pix] = pp
    match_gt[gpix] = gp
    return match_pred.reshape(h, w), match_gt.reshape(h, w)


def evaluate_levels(
    ptr: np.ndarray,
    pix: np.ndarray,
    gts: np.ndarray,
    max_dist: float = 0.0075,
    approximate: bool = False,
    num_threads: int = 1,
) -> np.ndarray:
    """Benchmark counts per level: int64 [T, 4] = (cntR, sumR, cntP, sumP) of level pixel sets (CSR) vs gts bool [K, H, W].

    Level i's predicted pixels are ``pix[ptr[i]:ptr[i+1]]`` (flat y*W+x, as from
    :func:`pixelwise.geometry.thinning.thin_levels`). ``cntR`` counts matched ground-truth pixels
    summed over annotators, ``sumR`` all ground-truth pixels, ``cntP`` predicted pixels matched
    in at least one annotator, ``sumP`` all predicted pixels. With ``approximate`` a pixel counts
    as matched if any pixel of the other map lies within the tolerance (no one-to-one pairing).
    Annotators are matched in up to ``num_threads`` threads.
    """
    gts = np.asarray(gts, dtype=bool)
    if gts.ndim != 3:
        raise ValueError(f"evaluate_levels: expected gts [K, H, W], got shape {list(gts.shape)}")
    nk, h, w = gts.shape
    flat = gts.reshape(nk, -1)
    gpix = (np.flatnonzero(flat) % (h * w)).astype(np.int64)
    gptr = np.concatenate([[0], np.cumsum(flat.sum(1))]).astype(np.int64)
    dy, dx, cost = match_offsets(tolerance_px(h, w, max_dist))
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    pix = np.ascontiguousarray(pix, dtype=np.int64)
    nt = ptr.size - 1
    luid, upix = _pred_nodes(h, w, pix)
    nu = upix.size
    graph = _build_graph(upix, gptr, gpix, h, w, dy, dx, cost, 0)
    near = _near_preds(graph, nu)
    groups = [
        g
        for g in np.array_split(np.arange(nk, dtype=np.int64), max(1, min(int(num_threads), nk)))
        if g.size
    ]

    def run(ks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _evaluate_group(ks, nu, gptr, ptr, luid, graph, near, bool(approximate))

    if len(groups) > 1:
        with ThreadPoolExecutor(len(groups)) as pool:
            results = list(pool.map(run, groups))
    else:
        results = [run(g) for g in groups]
    counts = np.zeros((nt, 4), np.int64)
    counts[:, 1] = gptr[-1]
    counts[:, 3] = np.diff(ptr)
    if not results:
        return counts
    counts[:, 0] = sum(c.sum(0) for c, _, _ in results)
    offsets = np.cumsum([0] + [m.size for _, _, m in results])[:-1]
    mptr = np.concatenate([p + o for (_, p, _), o in zip(results, offsets)])
    matched = np.concatenate([m for _, _, m in results])
    counts[:, 2] = _combine(ptr, luid, nu, near, mptr, matched, bool(approximate))
    return counts


def compile_kernels() -> float:
    """Compile (or load from numba's on-disk cache) every kernel of the boundary benchmark; returns seconds.

    Each kernel is called with the argument types :class:`~pixelwise.metrics.BoundaryF`,
    :func:`~pixelwise.geometry.thinning.thin`, :func:`~pixelwise.geometry.thinning.edge_nms` and
    :func:`correspond_pixels` give it, so a later process finds all of them in the cache (the
    install test checks that it compiles nothing). Needs numpy and numba only: the wheel build runs
    it (``setup.py``) before torch or scipy are installed.
    """
    import time

    from pixelwise.geometry import thinning

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    soft = rng.random((24, 32))
    gts = rng.random((2, 24, 32)) > 0.9
    levels = np.searchsorted(np.linspace(0.1, 0.9, 3), soft, side="right")
    for do_thin in (True, False):
        for threads in (1, 2):
            ptr, pix = thinning.thin_levels(levels, 3, do_thin=do_thin, num_threads=threads)
            for approximate in (False, True):
                evaluate_levels(ptr, pix, gts, approximate=approximate, num_threads=threads)
    correspond_pixels(soft > 0.8, gts[0])
    tie_break(0, np.arange(3), np.arange(3))
    thinning.thin_maps(gts)
    # edge_nms's kernel, on the float32 maps its numpy/scipy preprocessing hands it.
    e = soft.astype(np.float32)
    thinning._nms(e, e, 1, 5, np.float32(1.01))
    return time.perf_counter() - start
