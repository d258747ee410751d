"""Procedural street scenes: a pinhole camera over a road plane, objects painted far to near.

World frame, in units ``u`` = half the road width (about 3.5 m): ``X`` lateral (road centre 0,
road ``|X| < 1``), ``Y`` up (ground ``Y = 0``), ``Z`` depth. The camera sits at ``(cam_x, hc, 0)``
looking along ``+Z``; a world point projects to pixel ``x = x_v + f (X - cam_x) / Z``,
``y = y_h + f (hc - Y) / Z`` (pixel centres at integer coordinates).

Every painted polygon gets a *segment id*; look-up tables turn segment ids into colour, class,
instance and texture, so drawing costs one ``cv2.fillPoly`` per part and the colouring is a few
vectorised gathers. Objects are planar billboards (pedestrians, clutter, trees) or road-aligned
boxes (cars, trucks, kiosks, hedges) of which only the faces turned to the camera are drawn.
"""

from __future__ import annotations

import math
from itertools import chain

import cv2
import numpy as np

SCENE_CLASSES: tuple[str, ...] = (
    "unknown",
    "sky",
    "road",
    "sidewalk",
    "building",
    "vegetation",
    "car",
    "truck",
    "pedestrian",
)
UNKNOWN, SKY, ROAD, SIDEWALK, BUILDING, VEGETATION, CAR, TRUCK, PEDESTRIAN = range(9)
THING_CLASSES: tuple[int, ...] = (CAR, TRUCK, PEDESTRIAN)

# Cityscapes colours where Cityscapes has the class; "unknown" (street clutter) gets the
# traffic-sign yellow because here it is a real class, not void.
SCENE_PALETTE: np.ndarray = np.array(
    [
        [220, 220, 0],
        [70, 130, 180],
        [128, 64, 128],
        [244, 35, 232],
        [70, 70, 70],
        [107, 142, 35],
        [0, 0, 142],
        [0, 0, 70],
        [220, 20, 60],
    ],
    dtype=np.uint8,
)

# Texture kinds: amplitudes of (fine grain, leafy blobs, low-frequency, vertical ribs) luminance
# noise. The ribs (a 4-pixel column period) mark street furniture: ribbed and brushed metal is a
# local cue that tells a bin or a pole from a person in a dark coat.
_TEX_AMPS = {
    "flat": (0.02, 0.0, 0.0, 0.0),
    "sky": (0.01, 0.0, 0.10, 0.0),
    "asphalt": (0.09, 0.04, 0.08, 0.0),
    "paving": (0.06, 0.03, 0.06, 0.0),
    "grass": (0.12, 0.14, 0.10, 0.0),
    "leaves": (0.14, 0.30, 0.06, 0.0),
    "bark": (0.10, 0.05, 0.0, 0.0),
    "wall": (0.03, 0.03, 0.08, 0.0),
    "glass": (0.03, 0.04, 0.12, 0.0),
    "paint": (0.025, 0.0, 0.05, 0.0),
    "cloth": (0.05, 0.06, 0.0, 0.0),
    "skin": (0.02, 0.0, 0.0, 0.0),
    "metal": (0.03, 0.0, 0.04, 0.0),
    "street": (0.03, 0.0, 0.04, 0.16),
}
_TEX = {name: i for i, name in enumerate(_TEX_AMPS)}
_TEX_TABLE = np.asarray(list(_TEX_AMPS.values()), dtype=np.float32).T.copy()  # [4, kinds]

# Fixed segment ids of the ground plane (painted procedurally, not by polygons).
_SKY_SEG, _ROAD_SEG, _MARK_SEG, _WALK_SEG, _CURB_SEG, _GRASS_SEG = range(6)
_N_GROUND = 6

# Unit circle as a 12-gon: enough for blobs that are at most a few dozen pixels wide.
_CIRCLE = [(math.cos(2 * math.pi * k / 12), math.sin(2 * math.pi * k / 12)) for k in range(12)]

_CAR_COLOURS = (
    (0.88, 0.88, 0.9),
    (0.68, 0.69, 0.72),
    (0.42, 0.43, 0.46),
    (0.08, 0.08, 0.09),
    (0.72, 0.1, 0.1),
    (0.15, 0.25, 0.62),
    (0.1, 0.14, 0.32),
    (0.86, 0.72, 0.12),
    (0.16, 0.34, 0.22),
    (0.8, 0.42, 0.1),
    (0.4, 0.26, 0.18),
)
_CARGO_COLOURS = (
    (0.92, 0.92, 0.92),
    (0.8, 0.8, 0.82),
    (0.9, 0.78, 0.2),
    (0.85, 0.45, 0.12),
    (0.7, 0.14, 0.12),
    (0.2, 0.35, 0.7),
    (0.2, 0.45, 0.3),
)
_WALL_COLOURS = (
    (0.76, 0.68, 0.55),
    (0.6, 0.32, 0.24),
    (0.55, 0.55, 0.56),
    (0.82, 0.8, 0.76),
    (0.84, 0.74, 0.48),
    (0.38, 0.35, 0.34),
    (0.78, 0.6, 0.58),
    (0.5, 0.55, 0.62),
)
# Street furniture keeps to municipal paints and poster colours, so that it does not look like
# clothing: both are small upright things on the sidewalk.
_STREET_PAINT = ((0.18, 0.32, 0.22), (0.4, 0.42, 0.45), (0.15, 0.22, 0.4), (0.55, 0.12, 0.1))
_POSTERS = ((0.92, 0.9, 0.85), (0.85, 0.2, 0.15), (0.95, 0.8, 0.2), (0.2, 0.4, 0.75))
_SKIN = ((0.95, 0.8, 0.7), (0.82, 0.62, 0.48), (0.58, 0.4, 0.28), (0.36, 0.24, 0.16))
_TROUSERS = ((0.12, 0.18, 0.35), (0.08, 0.08, 0.09), (0.35, 0.35, 0.37), (0.62, 0.55, 0.42))
_HAIR = ((0.08, 0.06, 0.05), (0.3, 0.2, 0.1), (0.6, 0.48, 0.25), (0.55, 0.55, 0.55))


class _Draws:
    """Uniform draws handed out from a pre-generated buffer (far cheaper than a Generator call each)."""

    __slots__ = ("_rng", "_next")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._next = iter(rng.random(1024).tolist()).__next__

    def __call__(self, lo: float = 0.0, hi: float = 1.0) -> float:
        """One uniform draw in [lo, hi)."""
        try:
            u = self._next()
        except StopIteration:  # refilled from the same generator: still deterministic
            self._next = iter(self._rng.random(1024).tolist()).__next__
            u = self._next()
        return lo + (hi - lo) * u

    def int(self, lo: int, hi: int) -> int:
        """One integer in [lo, hi)."""
        return lo + min(int(self() * (hi - lo)), hi - lo - 1)

    def pick(self, seq):
        """One element of seq."""
        return seq[self.int(0, len(seq))]

    def colour(self, base, jitter: float = 0.05) -> tuple[float, float, float]:
        """base (r, g, b) with a shared brightness and a per-channel jitter."""
        b = self(1 - 2 * jitter, 1 + 2 * jitter)
        r = min(max(base[0] * b + self(-jitter, jitter), 0.0), 1.0)
        g = min(max(base[1] * b + self(-jitter, jitter), 0.0), 1.0)
        return (r, g, min(max(base[2] * b + self(-jitter, jitter), 0.0), 1.0))


def _shade(c, k: float) -> tuple[float, float, float]:
    return (min(c[0] * k, 1.0), min(c[1] * k, 1.0), min(c[2] * k, 1.0))


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]


class _Scene:
    """Builds one scene: camera, look-up tables of segments, polygons in world coordinates."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng = rng
        r = self.r = _Draws(rng)
        self.H, self.W = height, width
        self.f = width / (2 * math.tan(math.radians(r(58, 78)) / 2))
        self.y_h = height * r(0.34, 0.46)
        self.x_v = width * r(0.4, 0.6)
        self.hc = r(0.55, 0.85)
        self.cam_x = r(-0.45, 0.6)
        self.z_bottom = self.f * self.hc / (height - self.y_h)
        self.z_end = r(14.0, 30.0)
        self.col: list = []
        self.cls: list[int] = []
        self.inst: list[int] = []
        self.tex: list = []
        self.facade_recs: tuple[list, list, list] = ([], [], [])  # frontal, left, right
        self.window_of: dict[int, int] = {}
        self.n_inst = 0
        self.pts: list = []
        self.polys: list = []
        self.objects: list = []
        # Ground segments first, in the order of the fixed ids.
        sky = r.pick(((0.36, 0.56, 0.86), (0.45, 0.62, 0.85), (0.62, 0.67, 0.73)))
        self.sky_top = r.colour(sky, 0.04)
        self.sky_haze = r.colour((0.82, 0.85, 0.88), 0.04)
        g = r(0.22, 0.38)
        self.seg(self.sky_top, SKY, "sky")
        self.seg(r.colour((g, g, g * r(0.98, 1.08)), 0.02), ROAD, "asphalt")
        self.seg(r.pick(((0.86, 0.86, 0.84), (0.88, 0.76, 0.3))), ROAD, "paint")
        walk = r.colour(r.pick(((0.62, 0.6, 0.58), (0.66, 0.6, 0.52), (0.55, 0.55, 0.57))), 0.04)
        self.seg(walk, SIDEWALK, "paving")
        self.seg(_shade(walk, 1.18), SIDEWALK, "paving")
        self.seg(r.colour((0.32, 0.5, 0.18), 0.05), VEGETATION, "grass")

    # -- look-up tables and polygons ---------------------------------------------------------

    def seg(self, colour, cls: int, tex: str, inst: int = 0) -> int:
        """A new segment id with its colour (r, g, b in [0, 1]), class, texture and instance."""
        self.col.extend(colour)
        self.cls.append(cls)
        self.tex.append(_TEX[tex])
        self.inst.append(inst)
        return len(self.cls) - 1

    def poly(self, sid: int, pts) -> None:
        """Queue a world polygon [(X, Y, Z), ...] to be filled with segment sid (-1: shadow)."""
        self.polys.append((sid, len(self.pts), len(pts)))
        self.pts.extend(pts)

    def flush(self, seg: np.ndarray, shade: np.ndarray | None = None) -> None:
        """Project the queued polygons and fill them in queue order (painter's algorithm)."""
        if not self.polys:
            return
        p = np.fromiter(chain.from_iterable(self.pts), np.float64, 3 * len(self.pts)).reshape(-1, 3)
        inv_z = self.f / np.maximum(p[:, 2], 1e-3)
        xy = np.empty((len(p), 2), dtype=np.float64)
        xy[:, 0] = self.x_v + (p[:, 0] - self.cam_x) * inv_z
        xy[:, 1] = self.y_h + (self.hc - p[:, 1]) * inv_z
        # 4 fractional bits (shift=4) place edges to 1/16 pixel.
        xy = np.rint(np.clip(xy * 16.0, -(2.0**28), 2.0**28)).astype(np.int32)
        for sid, s, n in self.polys:
            if sid >= 0:
                cv2.fillPoly(seg, [xy[s : s + n]], sid, cv2.LINE_8, 4)
            elif shade is not None:
                cv2.fillPoly(shade, [xy[s : s + n]], 1, cv2.LINE_8, 4)
        self.pts = []
        self.polys = []

    def frontal_ellipse(self, sid: int, x: float, y: float, z: float, rx: float, ry: float):
        """An ellipse in the plane Z = z facing the camera."""
        self.poly(sid, [(x + rx * c, y + ry * s, z) for c, s in _CIRCLE])

    def frontal_quad(self, sid: int, x0: float, x1: float, y0: float, y1: float, z: float):
        """An axis-aligned rectangle in the plane Z = z."""
        self.poly(sid, [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)])

    def box(self, x0, x1, y0, y1, z0, z1, cls, inst, near, side=None, top=None, tex="paint"):
        """Faces of a road-aligned box turned to the camera; returns the X of the visible side."""
        near_col, near_tex = near if isinstance(near[0], tuple) else (near, tex)
        side_col, side_tex = side if side is not None else (_shade(near_col, 0.78), near_tex)
        top_col, top_tex = top if top is not None else (_shade(near_col, 1.1), near_tex)
        self.frontal_quad(self.seg(near_col, cls, near_tex, inst), x0, x1, y0, y1, z0)
        side_x = x1 if x1 < self.cam_x else (x0 if x0 > self.cam_x else None)
        if side_x is not None:
            sid = self.seg(side_col, cls, side_tex, inst)
            self.poly(sid, [(side_x, y0, z0), (side_x, y0, z1), (side_x, y1, z1), (side_x, y1, z0)])
        if y1 < self.hc:
            sid = self.seg(top_col, cls, top_tex, inst)
            self.poly(sid, [(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)])
        return side_x

    def vehicle_shadow(self, x0: float, x1: float, z0: float, length: float):
        """The shadow on the road under a vehicle spanning X in [x0, x1], Z in [z0, z0 + length]."""
        self.poly(
            -1,
            [
                (x0 - 0.05, 0, z0 - 0.06),
                (x1 + 0.05, 0, z0 - 0.06),
                (x1 + 0.06, 0, z0 + length),
                (x0 - 0.06, 0, z0 + length),
            ],
        )

    def side_circle(self, sid: int, x: float, y: float, z: float, rad: float):
        """A circle in the plane X = x (wheels on a vehicle side)."""
        self.poly(sid, [(x, y + rad * s, z + rad * c) for c, s in _CIRCLE])

    def new_instance(self) -> int:
        self.n_inst += 1
        return self.n_inst

    # -- placement -----------------------------------------------------------------------------

    def z_range(self, x: float, height: float, min_frac: float) -> tuple[float, float] | None:
        """Depths where an object at lateral x has its centre in view and is >= min_frac*H tall."""
        dx = x - self.cam_x
        room = (0.96 * self.W - self.x_v) if dx >= 0 else (self.x_v - 0.04 * self.W)
        z_lo = max(self.f * abs(dx) / max(room, 1.0), 0.95 * self.z_bottom, 0.3)
        z_hi = min(self.f * height / (min_frac * self.H), self.z_end - 1.0)
        return (z_lo, z_hi) if z_lo < z_hi else None

    def sample_z(self, zr: tuple[float, float], power: float = 1.5) -> float:
        # power > 1 favours near, large objects: the classes with few pixels need them.
        return zr[0] + (zr[1] - zr[0]) * self.r() ** power

    # -- background ----------------------------------------------------------------------------

    def ground(self, seg: np.ndarray, pattern: np.ndarray) -> None:
        """Road, markings, curbs, sidewalks and grass per pixel below the horizon."""
        r = self.r
        r0 = max(int(math.floor(self.y_h)) + 1, 0)
        if r0 >= self.H:
            return
        z = (self.f * self.hc) / np.maximum(
            np.arange(r0, self.H, dtype=np.float32) - self.y_h, 1e-3
        )
        z = z[:, None]
        x = (np.arange(self.W, dtype=np.float32) - self.x_v)[None, :] * (z / self.f) + self.cam_x
        ax = np.abs(x)
        left = x < 0
        g = np.where(ax < 1, _ROAD_SEG, _WALK_SEG).astype(np.int32)
        beyond = ax >= np.where(left, self.walk_l, self.walk_r)
        if self.beyond_l != _WALK_SEG:
            g[beyond & left] = self.beyond_l
        if self.beyond_r != _WALK_SEG:
            g[beyond & ~left] = self.beyond_r
        g[(ax >= 1) & (ax < 1.05)] = _CURB_SEG

        def frac(v):
            return v - np.floor(v)

        mark_w = r(0.025, 0.04)
        marks = (ax < mark_w) & (frac(z * (1 / r(0.6, 1.2))) < r(0.35, 0.6))
        marks |= (ax > 0.92) & (ax < 0.92 + mark_w)
        if self.zebra is not None:
            band = (z > self.zebra[0]) & (z < self.zebra[1])
            marks |= band & (ax < 0.9) & (frac(x * (1 / 0.22)) < 0.5)
        g[marks] = _MARK_SEG
        seg[r0:] = g
        tile = 1 / r(0.18, 0.3)
        joints = (frac(x * tile) < 0.1) | (frac(z * tile) < 0.1)
        joints &= (g == _WALK_SEG) | (g == _CURB_SEG)
        pattern[r0:][joints] = 0.86

    def facades(self) -> None:
        """Frontal buildings closing the street and building rows along the sidewalks."""
        r = self.r
        ze = self.z_end
        xl = self.cam_x - self.x_v * ze / self.f - 1.0
        xr = self.cam_x + (self.W - self.x_v) * ze / self.f + 1.0
        x = xl
        trees = []
        while x < xr:
            w = r(1.5, 4.5)
            if r() < 0.2:
                trees.append((x + w / 2, w))
            h = r(self.hc + 0.8, self.hc + 6.0)
            self.building_face(0, ze, x, x + w, h)
            x += w
        for xc, w in trees:
            for _ in range(3):
                rad = r(0.3, 0.5) * w
                sid = self.seg(r.colour((0.2, 0.4, 0.16), 0.05), VEGETATION, "leaves")
                self.frontal_ellipse(
                    sid, xc + r(-0.3, 0.3) * w, r(0.3, 0.8) * w, ze - 0.5, rad, rad
                )
        fronts = []
        for plane, side in ((1, -1), (2, 1)):
            if (self.beyond_l if side < 0 else self.beyond_r) != _WALK_SEG:
                continue
            xw = side * (self.walk_l if side < 0 else self.walk_r)
            z, h_prev = 0.25, 0.0
            while z < ze:
                length = r(1.5, 5.0)
                if r() < 0.08:  # an alley between two blocks
                    z += r(0.4, 1.0)
                    h_prev = 0.0
                    continue
                h = r(1.3, 5.5)
                z1 = min(z + length, ze)
                if h > h_prev:
                    # The end wall facing the camera shows above a lower, nearer block; it is
                    # queued before all facades, which hide it wherever they are taller.
                    c = _shade(r.colour(r.pick(_WALL_COLOURS)), 0.75)
                    sid = self.seg(c, BUILDING, "wall")
                    self.poly(
                        sid, [(xw, 0, z), (xw + side * 3, 0, z), (xw + side * 3, h, z), (xw, h, z)]
                    )
                fronts.append((plane, xw, z, z1, h))
                z, h_prev = z1, h
        for args in fronts:
            self.building_face(*args)

    def building_face(self, plane: int, at: float, a0: float, a1: float, h: float) -> None:
        """A facade with a window grid: plane 0 is X in [a0, a1] at Z = at, planes 1/2 (left/right)
        are Z in [a0, a1] at X = at."""
        r = self.r
        wall = r.colour(r.pick(_WALL_COLOURS))
        sid = self.seg(wall, BUILDING, "wall")
        glass = r.colour(r.pick(((0.16, 0.2, 0.26), (0.3, 0.36, 0.44), (0.22, 0.22, 0.24))), 0.04)
        wid = self.seg(glass, BUILDING, "glass")
        if plane == 0:
            self.poly(sid, [(a0, 0, at), (a1, 0, at), (a1, h, at), (a0, h, at)])
        else:
            self.poly(sid, [(at, 0, a0), (at, 0, a1), (at, h, a1), (at, h, a0)])
        pa, pb = r(0.45, 0.9), r(0.6, 0.9)
        # The window grid along a (X on frontal facades, Z on side ones) and the height Y:
        # a-start, a-origin, 1/a-period, a-duty, y-origin, 1/y-period, y-duty, y-max, facade seg.
        rec = (
            a0,
            a0 + r(0, pa),
            1 / pa,
            r(0.35, 0.6),
            r(0.3, 0.8),
            1 / pb,
            r(0.4, 0.6),
            h - 0.25,
            sid,
        )
        self.facade_recs[plane].append(rec)
        self.window_of[sid] = wid

    def windows(self, seg: np.ndarray, pattern: np.ndarray) -> None:
        """Replace facade pixels that fall on their facade's window grid by its window segment.

        On each facade plane the grid coordinate a depends on the column only, and the height Y
        on the column times the row, so each plane costs a handful of whole-image operations.
        """
        if not self.window_of:
            return
        n = len(self.cls)
        plane_of = np.zeros(n, dtype=np.int8)
        win_seg = np.arange(n, dtype=np.int32)
        for plane, recs in enumerate(self.facade_recs):
            for rec in recs:
                plane_of[rec[8]] = plane + 1
        for sid, wid in self.window_of.items():
            win_seg[sid] = wid
        pl = np.take(plane_of, seg)
        win = np.zeros(seg.shape, dtype=bool)
        xv = min(max(int(math.ceil(self.x_v)), 0), self.W)
        y_foot = min(max(int(math.ceil(self.y_h + self.f * self.hc / self.z_end)) + 1, 0), self.H)
        for plane, recs in enumerate(self.facade_recs):
            if not recs:
                continue
            # Only the part of the image a plane can cover: the far frontal facades stand on the
            # horizon, the left and right walls lie left and right of the vanishing point.
            rows, cols = {
                0: (slice(0, y_foot), slice(0, self.W)),
                1: (slice(0, self.H), slice(0, xv)),
                2: (slice(0, self.H), slice(xv, self.W)),
            }[plane]
            dx = np.arange(cols.start, cols.stop, dtype=np.float32) - self.x_v
            dy = (np.arange(rows.start, rows.stop, dtype=np.float32) - self.y_h)[:, None]
            if plane == 0:
                z = np.full(len(dx), self.z_end, dtype=np.float32)
                a = self.cam_x + dx * (self.z_end / self.f)
            else:
                x_plane = self.left_x if plane == 1 else self.right_x
                dx = np.where(np.abs(dx) < 1e-3, np.float32(1e-3), dx)
                z = np.maximum((self.f * (x_plane - self.cam_x)) / dx, 1e-3).astype(np.float32)
                a = z
            p = np.asarray(sorted(recs), dtype=np.float32)
            idx = np.clip(np.searchsorted(p[:, 0], a, side="right") - 1, 0, len(p) - 1)
            q = p[idx]  # per-column parameters of the facade seen in that column
            ua = (a - q[:, 1]) * q[:, 2]
            col_ok = (ua - np.floor(ua)) < q[:, 3]
            y = self.hc - dy * (z / self.f)[None, :]
            ub = (y - q[:, 4]) * q[:, 5]
            fb = np.floor(ub)
            w = ((ub - fb) < q[:, 6]) & (ub > 0) & (y < q[:, 7]) & col_ok[None, :]
            w &= pl[rows, cols] == plane + 1
            win[rows, cols] |= w
            # Lit and dark panes: a hash of the window's grid cell.
            cell = (
                fb.astype(np.int32) * 7919
                + (np.floor(ua).astype(np.int32) * 104729 + idx * 3571)[None, :]
            )
            h = (cell & 1023).astype(np.float32) * (0.6 / 1023) + 0.7
            np.copyto(pattern[rows, cols], h, where=w)
        np.copyto(seg, np.take(win_seg, seg), where=win)

    # -- objects ---------------------------------------------------------------------------------

    def car(self, x: float, z0: float, oncoming: bool) -> None:
        r = self.r
        inst = self.new_instance()
        w, length = r(0.44, 0.52), r(1.05, 1.3)
        hb, hr = r(0.2, 0.25), r(0.36, 0.43)
        x0, x1 = x - w / 2, x + w / 2
        body = r.colour(r.pick(_CAR_COLOURS), 0.04)
        glass = r.colour((0.12, 0.15, 0.2), 0.03)
        dark = self.seg((0.05, 0.05, 0.06), CAR, "flat", inst)
        self.vehicle_shadow(x0, x1, z0, length)
        self.frontal_quad(dark, x0 + 0.03, x0 + 0.12, 0.0, 0.12, z0 + 0.12)
        self.frontal_quad(dark, x1 - 0.12, x1 - 0.03, 0.0, 0.12, z0 + 0.12)
        side = self.box(x0, x1, 0.06, hb, z0, z0 + length, CAR, inst, body)
        c0, c1 = (0.25, 0.7) if oncoming else (0.32, 0.78)
        inset = r(0.02, 0.05)
        self.box(
            x0 + inset,
            x1 - inset,
            hb,
            hr,
            z0 + c0 * length,
            z0 + c1 * length,
            CAR,
            inst,
            (glass, "glass"),
            side=(glass, "glass"),
            top=(body, "paint"),
        )
        if side is not None:
            for zc in (z0 + 0.2 * length, z0 + 0.8 * length):
                self.side_circle(dark, side, 0.1, zc, 0.1)
        lamp = self.seg(((1.0, 0.95, 0.8) if oncoming else (0.85, 0.1, 0.08)), CAR, "flat", inst)
        ly = hb - 0.07
        self.frontal_quad(lamp, x0 + 0.03, x0 + 0.11, ly, ly + 0.045, z0)
        self.frontal_quad(lamp, x1 - 0.11, x1 - 0.03, ly, ly + 0.045, z0)
        plate = self.seg((0.9, 0.9, 0.88), CAR, "flat", inst)
        self.frontal_quad(plate, x - 0.06, x + 0.06, 0.09, 0.13, z0)

    def truck(self, x: float, z0: float, oncoming: bool) -> None:
        r = self.r
        inst = self.new_instance()
        w = r(0.62, 0.72)
        x0, x1 = x - w / 2, x + w / 2
        hc_, lc = r(0.72, 0.85), r(0.5, 0.6)
        hb, lb = r(0.95, 1.15), r(1.8, 3.0)
        cargo = r.colour(r.pick(_CARGO_COLOURS), 0.04)
        cab = r.colour(r.pick(_CARGO_COLOURS + _CAR_COLOURS[:6]), 0.04)
        glass = r.colour((0.12, 0.15, 0.2), 0.03)
        dark = self.seg((0.06, 0.06, 0.07), TRUCK, "flat", inst)
        total = lb + lc + 0.05
        self.vehicle_shadow(x0, x1, z0, total)
        self.frontal_quad(dark, x0 + 0.03, x1 - 0.03, 0.0, 0.16, z0 + 0.2)
        if oncoming:
            zb = z0 + lc + 0.05
            side = self.box(x0 + 0.01, x1 - 0.01, 0.14, hb, zb, zb + lb, TRUCK, inst, cargo)
            self.box(x0, x1, 0.1, hc_, z0, z0 + lc, TRUCK, inst, cab)
            self.frontal_quad(
                self.seg(glass, TRUCK, "glass", inst),
                x0 + 0.04,
                x1 - 0.04,
                0.45 * hc_,
                0.9 * hc_,
                z0,
            )
            grille = self.seg((0.15, 0.15, 0.16), TRUCK, "metal", inst)
            self.frontal_quad(grille, x - 0.18, x + 0.18, 0.14, 0.32, z0)
            lamp = self.seg((1.0, 0.95, 0.8), TRUCK, "flat", inst)
            self.frontal_quad(lamp, x0 + 0.03, x0 + 0.1, 0.18, 0.24, z0)
            self.frontal_quad(lamp, x1 - 0.1, x1 - 0.03, 0.18, 0.24, z0)
            wheels = (z0 + 0.25, zb + lb - 0.5, zb + lb - 0.2)
        else:
            zc = z0 + lb + 0.05
            self.box(x0, x1, 0.1, hc_, zc, zc + lc, TRUCK, inst, cab)
            side = self.box(x0, x1, 0.14, hb, z0, z0 + lb, TRUCK, inst, cargo)
            door = self.seg(_shade(cargo, 0.55), TRUCK, "flat", inst)
            self.frontal_quad(door, x - 0.012, x + 0.012, 0.16, hb - 0.04, z0)
            bumper = self.seg((0.12, 0.12, 0.13), TRUCK, "metal", inst)
            self.frontal_quad(bumper, x0 + 0.02, x1 - 0.02, 0.1, 0.17, z0)
            lamp = self.seg((0.85, 0.1, 0.08), TRUCK, "flat", inst)
            self.frontal_quad(lamp, x0 + 0.03, x0 + 0.1, 0.18, 0.23, z0)
            self.frontal_quad(lamp, x1 - 0.1, x1 - 0.03, 0.18, 0.23, z0)
            wheels = (z0 + 0.3, z0 + 0.62, zc + lc - 0.2)
        if side is not None:
            if r() < 0.6:  # a livery band along the cargo box
                band = self.seg(r.colour(r.pick(_CARGO_COLOURS)), TRUCK, "paint", inst)
                y0, y1 = r(0.35, 0.5) * hb, r(0.6, 0.8) * hb
                zb0, zb1 = (
                    (z0 + lc + 0.15, z0 + total - 0.1) if oncoming else (z0 + 0.1, z0 + lb - 0.1)
                )
                self.poly(
                    band, [(side, y0, zb0), (side, y0, zb1), (side, y1, zb1), (side, y1, zb0)]
                )
            for zw in wheels:
                self.side_circle(dark, side, 0.13, zw, 0.13)

    def pedestrian(self, x: float, z: float) -> None:
        """A walker seen from front or back: legs, shoes, torso with sleeves, head and hair."""
        r = self.r
        inst = self.new_instance()
        h = r(0.5, 0.64)  # a little taller than life: people must stay several pixels wide

        def quad(sid, pts):
            self.poly(sid, [(x + px * h, py * h, z) for px, py in pts])

        skin = r.colour(r.pick(_SKIN), 0.03)
        shirt = _hsv(r(), r(0.4, 0.85), r(0.4, 0.9))
        trousers = r.colour(r.pick(_TROUSERS), 0.04)
        s = r(-0.08, 0.08)  # stride
        legs = self.seg(trousers, PEDESTRIAN, "cloth", inst)
        quad(legs, [(-0.1, 0.5), (0.0, 0.5), (-0.005 - s, 0.03), (-0.095 - s, 0.03)])
        quad(legs, [(0.0, 0.5), (0.1, 0.5), (0.095 + s, 0.03), (0.005 + s, 0.03)])
        shoes = self.seg((0.08, 0.07, 0.07), PEDESTRIAN, "flat", inst)
        quad(shoes, [(-0.105 - s, 0.0), (-0.0 - s, 0.0), (-0.005 - s, 0.045), (-0.095 - s, 0.045)])
        quad(shoes, [(0.0 + s, 0.0), (0.105 + s, 0.0), (0.095 + s, 0.045), (0.005 + s, 0.045)])
        top = self.seg(shirt, PEDESTRIAN, "cloth", inst)
        hem = 0.3 if r() < 0.3 else 0.46  # coats reach the knees
        a = r(0.0, 0.05)  # arms swing out
        quad(top, [(-0.135, hem), (0.135, hem), (0.15, 0.83), (-0.15, 0.83)])
        quad(top, [(-0.15, 0.83), (-0.09, 0.83), (-0.15 - a, 0.46), (-0.21 - a, 0.48)])
        quad(top, [(0.09, 0.83), (0.15, 0.83), (0.21 + a, 0.48), (0.15 + a, 0.46)])
        face = self.seg(skin, PEDESTRIAN, "skin", inst)
        self.frontal_ellipse(face, x, 0.9 * h, z, 0.07 * h, 0.085 * h)
        hair = self.seg(r.colour(r.pick(_HAIR), 0.03), PEDESTRIAN, "cloth", inst)
        self.frontal_ellipse(hair, x, 0.95 * h, z, 0.072 * h, 0.055 * h)
        if r() < 0.3:  # a bag hanging at one side
            bag = self.seg(r.colour(r.pick(_TROUSERS + _CARGO_COLOURS)), PEDESTRIAN, "cloth", inst)
            sx = r.pick((-1, 1))
            quad(bag, [(sx * 0.16, 0.3), (sx * 0.3, 0.3), (sx * 0.3, 0.5), (sx * 0.16, 0.5)])

    def tree(self, x: float, z: float, small: bool = False) -> None:
        r = self.r
        th = r(0.15, 0.3) if small else r(0.5, 1.0)
        rad = r(0.18, 0.3) if small else r(0.3, 0.6)
        tw = r(0.03, 0.06) * (rad / 0.3)
        if not small:
            bark = self.seg(r.colour((0.33, 0.24, 0.16), 0.04), VEGETATION, "bark")
            self.frontal_quad(bark, x - tw, x + tw, 0.0, th + rad * 0.5, z)
        base = r.colour(r.pick(((0.2, 0.38, 0.14), (0.26, 0.45, 0.16), (0.16, 0.3, 0.15))), 0.04)
        yc = th + rad * 0.7 if not small else rad * 0.8
        for _ in range(r.int(3, 6)):
            sid = self.seg(_shade(base, r(0.8, 1.2)), VEGETATION, "leaves")
            rr = rad * r(0.55, 0.85)
            self.frontal_ellipse(
                sid, x + r(-0.6, 0.6) * rad, yc + r(-0.4, 0.5) * rad, z, rr, rr * r(0.8, 1.1)
            )

    def hedge(self, side: int) -> None:
        r = self.r
        xw = side * (self.walk_l if side < 0 else self.walk_r)
        x0, x1 = sorted((xw + side * 0.03, xw + side * r(0.2, 0.35)))
        c = r.colour((0.18, 0.36, 0.14), 0.04)
        self.box(
            x0,
            x1,
            0.0,
            r(0.22, 0.4),
            r(0.3, 0.8),
            r(0.5, 0.9) * self.z_end,
            VEGETATION,
            0,
            (c, "leaves"),
            side=(_shade(c, 0.8), "leaves"),
            top=(_shade(c, 1.15), "leaves"),
        )

    def clutter(self, kind: str, x: float, z: float) -> None:
        """Street furniture of the class "unknown": poles, signs, bins, kiosks, barriers."""
        r = self.r
        metal = r.colour(r.pick(((0.6, 0.62, 0.64), (0.48, 0.5, 0.53), (0.34, 0.36, 0.38))), 0.04)
        if kind in ("sign", "light", "lamp"):
            pw = r(0.035, 0.045)
            ph = r(0.75, 0.95) if kind != "lamp" else r(1.4, 1.9)
            pole = self.seg(metal, UNKNOWN, "street")
            self.frontal_quad(pole, x - pw, x + pw, 0.0, ph, z)
            if kind == "sign":
                shape = r.int(0, 3)
                if shape == 0:
                    red = self.seg((0.8, 0.1, 0.1), UNKNOWN, "paint")
                    self.frontal_ellipse(red, x, ph, z, 0.11, 0.11)
                    white = self.seg((0.92, 0.92, 0.9), UNKNOWN, "paint")
                    self.frontal_ellipse(white, x, ph, z, 0.075, 0.075)
                elif shape == 1:
                    blue = self.seg(r.colour((0.1, 0.3, 0.7)), UNKNOWN, "paint")
                    self.frontal_quad(blue, x - 0.12, x + 0.12, ph - 0.1, ph + 0.1, z)
                    white = self.seg((0.92, 0.92, 0.9), UNKNOWN, "paint")
                    self.frontal_quad(white, x - 0.05, x + 0.05, ph - 0.06, ph + 0.06, z)
                else:
                    yel = self.seg((0.9, 0.75, 0.1), UNKNOWN, "paint")
                    self.poly(
                        yel,
                        [
                            (x, ph - 0.12, z),
                            (x + 0.12, ph, z),
                            (x, ph + 0.12, z),
                            (x - 0.12, ph, z),
                        ],
                    )
            elif kind == "light":
                housing = self.seg((0.1, 0.1, 0.1), UNKNOWN, "street")
                self.frontal_quad(housing, x - 0.07, x + 0.07, ph - 0.1, ph + 0.25, z)
                on = r.int(0, 3)
                for k, c in enumerate(((0.9, 0.1, 0.1), (0.95, 0.7, 0.1), (0.1, 0.85, 0.3))):
                    sid = self.seg(c if k == on else _shade(c, 0.3), UNKNOWN, "flat")
                    self.frontal_ellipse(sid, x, ph + 0.19 - 0.11 * k, z, 0.04, 0.04)
            else:
                head = self.seg((0.2, 0.2, 0.22), UNKNOWN, "street")
                d = -1 if x > 0 else 1
                self.frontal_quad(pole, min(x, x + d * 0.3), max(x, x + d * 0.3), ph - 0.04, ph, z)
                self.frontal_quad(
                    head,
                    min(x + d * 0.22, x + d * 0.4),
                    max(x + d * 0.22, x + d * 0.4),
                    ph - 0.09,
                    ph - 0.02,
                    z,
                )
        elif kind == "bin":
            w, h = r(0.14, 0.2), r(0.24, 0.32)
            c = r.colour(
                r.pick(((0.2, 0.45, 0.25), (0.4, 0.4, 0.42), (0.85, 0.45, 0.1), (0.15, 0.3, 0.6)))
            )
            self.box(x - w / 2, x + w / 2, 0.0, h, z, z + w, UNKNOWN, 0, (c, "street"))
            lid = self.seg(_shade(c, 0.6), UNKNOWN, "street")
            self.frontal_quad(
                lid, x - w / 2 - 0.01, x + w / 2 + 0.01, h - 0.04, h + 0.01, z - 0.005
            )
        elif kind == "cabinet":
            w, h, d = r(0.2, 0.32), r(0.3, 0.42), r(0.12, 0.18)
            c = r.colour(r.pick(((0.55, 0.6, 0.55), (0.7, 0.68, 0.6), (0.45, 0.47, 0.5))))
            self.box(x - w / 2, x + w / 2, 0.0, h, z, z + d, UNKNOWN, 0, (c, "street"))
            seam = self.seg(_shade(c, 0.5), UNKNOWN, "flat")
            self.frontal_quad(seam, x - 0.008, x + 0.008, 0.03, h - 0.03, z)
        elif kind == "column":
            w, h = r(0.25, 0.34), r(0.7, 0.95)
            body = self.seg(r.colour(r.pick(_STREET_PAINT)), UNKNOWN, "street")
            self.frontal_quad(body, x - w / 2, x + w / 2, 0.0, h, z)
            y = 0.12
            while y < h - 0.15:
                hh = r(0.12, 0.25)
                poster = self.seg(r.colour(r.pick(_POSTERS)), UNKNOWN, "paint")
                self.frontal_quad(poster, x - w / 2, x + w / 2, y, min(y + hh, h - 0.1), z)
                y += hh + 0.02
            cap = self.seg(_shade(metal, 0.8), UNKNOWN, "street")
            self.frontal_ellipse(cap, x, h, z, w * 0.6, 0.06)
        elif kind == "kiosk":
            w, h, d = r(0.5, 0.8), r(0.65, 0.8), r(0.4, 0.6)
            c = r.colour(r.pick(_STREET_PAINT))
            self.box(x - w / 2, x + w / 2, 0.0, h, z, z + d, UNKNOWN, 0, (c, "street"))
            glass = self.seg(r.colour((0.35, 0.4, 0.45)), UNKNOWN, "glass")
            self.frontal_quad(glass, x - w / 2 + 0.06, x + w / 2 - 0.06, 0.3, h - 0.12, z)
            roof = self.seg(_shade(c, 0.6), UNKNOWN, "street")
            self.frontal_quad(
                roof, x - w / 2 - 0.04, x + w / 2 + 0.04, h - 0.06, h + 0.04, z - 0.02
            )
        else:  # barrier
            w, h = r(0.4, 0.6), r(0.25, 0.32)
            legs = self.seg((0.85, 0.85, 0.85), UNKNOWN, "street")
            self.frontal_quad(legs, x - w / 2, x - w / 2 + 0.04, 0.0, h, z)
            self.frontal_quad(legs, x + w / 2 - 0.04, x + w / 2, 0.0, h, z)
            red = self.seg((0.85, 0.12, 0.1), UNKNOWN, "paint")
            white = self.seg((0.93, 0.93, 0.93), UNKNOWN, "paint")
            n = 5
            for k in range(n):
                xa = x - w / 2 + w * k / n
                self.frontal_quad(red if k % 2 == 0 else white, xa, xa + w / n, h - 0.1, h, z)

    # -- the scene -----------------------------------------------------------------------------

    def layout(self) -> None:
        """Choose the street's sides and queue every object with its depth (painted far to near)."""
        r = self.r
        self.walk_l, self.walk_r = 1 + r(0.35, 0.65), 1 + r(0.35, 0.65)
        self.left_x, self.right_x = -self.walk_l, self.walk_r
        self.beyond_l = _WALK_SEG if r() < 0.65 else _GRASS_SEG
        self.beyond_r = _WALK_SEG if r() < 0.65 else _GRASS_SEG
        self.zebra = None
        if r() < 0.35:  # a zebra crossing, with pedestrians on it
            zc = r(1.2, 3.5) * self.z_bottom
            self.zebra = (zc, zc + r(0.35, 0.6))
        objs = self.objects

        occupied: list[tuple[float, float, float, float]] = []  # x0, x1, z0, z1 of each vehicle

        def place_vehicle(kind: str) -> bool:
            for _ in range(8):
                u = r()
                if u < 0.38:  # right lane, driving away from the camera
                    x, oncoming = 0.5, False
                elif u < 0.76:  # left lane, oncoming
                    x, oncoming = -0.5, True
                else:  # parked at the kerb, either way round
                    x = r.pick((1, -1)) * (0.72 if kind == "car" else 0.62)
                    oncoming = r() < 0.5
                length = 1.3 if kind == "car" else 3.6
                half = 0.27 if kind == "car" else 0.37
                zr = self.z_range(x, 0.42 if kind == "car" else 1.0, 0.1 if kind == "car" else 0.2)
                if zr is None:
                    continue
                lo = zr[0] + length * 0.3 if oncoming and kind == "truck" else zr[0]
                if abs(x - self.cam_x) < 0.3:  # the lane the camera drives in keeps a gap
                    lo = max(lo, 2.5 * self.z_bottom)
                if lo >= zr[1]:
                    continue
                z = self.sample_z((lo, zr[1]), 1.3)
                if any(
                    x - half < b and x + half > a and z < d + 0.3 and z + length > c - 0.3
                    for a, b, c, d in occupied
                ):
                    continue
                occupied.append((x - half, x + half, z, z + length))
                x += r(-0.05, 0.05)
                fn = self.car if kind == "car" else self.truck
                objs.append((z, fn, (x, z, oncoming)))
                return True
            return False

        for _ in range(1 if r() < 0.7 else 2):
            place_vehicle("truck")
        for _ in range(r.int(2, 6)):
            place_vehicle("car")

        def sidewalk_x(margin: float) -> float:
            side = -1 if r() < 0.5 else 1
            outer = self.walk_l if side < 0 else self.walk_r
            return side * r(1.05 + margin, outer - margin)

        for _ in range(r.int(3, 9)):
            for _ in range(4):
                x = sidewalk_x(0.08)
                zr = self.z_range(x, 0.55, 0.2)
                if zr is not None:
                    z = self.sample_z(zr, 2.0)
                    objs.append((z, self.pedestrian, (x, z)))
                    break
        if self.zebra is not None:
            for _ in range(r.int(0, 3)):
                x = r(-0.85, 0.85)
                z = r(self.zebra[0], self.zebra[1])
                objs.append((z, self.pedestrian, (x, z)))

        kinds = ("sign", "light", "lamp", "bin", "cabinet", "column", "kiosk", "barrier")
        weights = (0.16, 0.08, 0.06, 0.18, 0.18, 0.12, 0.14, 0.08)
        cum = np.cumsum(weights).tolist()
        for _ in range(r.int(3, 7)):
            u = r() * cum[-1]
            kind = kinds[next(i for i, c in enumerate(cum) if u < c)]
            for _ in range(4):
                if kind in ("sign", "light", "lamp"):
                    side = r.pick((-1, 1))
                    x = side * r(1.08, 1.16)
                elif kind == "barrier":
                    x = r.pick((-1, 1)) * r(0.7, 0.85)
                else:
                    x = sidewalk_x(0.2)
                zr = self.z_range(x, 0.4, 0.12)
                if zr is not None:
                    z = self.sample_z(zr, 1.4)
                    objs.append((z, self.clutter, (kind, x, z)))
                    break

        for side in (-1, 1):
            outer = self.walk_l if side < 0 else self.walk_r
            park = (self.beyond_l if side < 0 else self.beyond_r) == _GRASS_SEG
            if park:
                for _ in range(r.int(3, 7)):
                    x = side * (outer + r(0.4, 2.5))
                    zr = self.z_range(x, 1.0, 0.1)
                    if zr is not None:
                        z = self.sample_z(zr, 1.0)
                        # Beyond the hedge: painted before every street object.
                        objs.append((1e4 + z, self.tree, (x, z, r() < 0.3)))
                if r() < 0.5:
                    objs.append((1e3, self.hedge, (side,)))
            else:
                for _ in range(r.int(0, 3)):
                    x = side * (outer - r(0.1, 0.18))
                    zr = self.z_range(x, 1.0, 0.1)
                    if zr is not None:
                        z = self.sample_z(zr, 1.0)
                        objs.append((z, self.tree, (x, z, False)))

    def draw_objects(self) -> None:
        """Emit every queued object's polygons, farthest first."""
        order = sorted(range(len(self.objects)), key=lambda i: -self.objects[i][0])
        for i in order:
            _, fn, args = self.objects[i]
            fn(*args)


_NOISE_BANKS: dict[tuple[int, int], np.ndarray] = {}


def _noise_bank(height: int, width: int) -> np.ndarray:
    """A fixed uniform [-1, 1) noise texture twice the image size; scenes crop it at random offsets.

    Cropping a bank made once per process from a fixed seed is deterministic and costs nothing,
    where drawing H*W fresh numbers per scene costs as much as the rest of the colouring.
    """
    bank = _NOISE_BANKS.get((height, width))
    if bank is None:
        bank = np.random.default_rng(0x5CE7E).random((2 * height, 2 * width), dtype=np.float32)
        bank = bank * 2 - 1
        _NOISE_BANKS[(height, width)] = bank
    return bank


def render_scene(rng: np.random.Generator, height: int, width: int) -> dict[str, np.ndarray]:
    """One street scene: image uint8 [H,W,3], mask uint8 [H,W], instances int32 [H,W], boundaries bool [H,W]."""
    sc = _Scene(rng, height, width)
    sc.layout()
    seg = np.zeros((height, width), dtype=np.int32)
    pattern = np.ones((height, width), dtype=np.float32)
    shade = np.zeros((height, width), dtype=np.uint8)
    sc.ground(seg, pattern)
    sc.facades()
    sc.flush(seg)
    sc.windows(seg, pattern)
    sc.draw_objects()
    sc.flush(seg, shade)
    return _compose(sc, seg, pattern, shade)


def _compose(
    sc: _Scene, seg: np.ndarray, pattern: np.ndarray, shade: np.ndarray
) -> dict[str, np.ndarray]:
    """Labels and the shaded, textured image from the painted segment map [H,W]."""
    r = sc.r
    height, width = seg.shape
    rng = sc.rng

    # Instance ids renumbered 1..n over the instances that stayed visible.
    n = len(sc.cls)
    inst = np.asarray(sc.inst, dtype=np.int32)
    if sc.n_inst:
        present = np.bincount(seg.ravel(), minlength=n) > 0
        seen = np.zeros(sc.n_inst + 1, dtype=bool)
        seen[inst[present]] = True
        seen[0] = False
        renum = np.zeros(sc.n_inst + 1, dtype=np.int32)
        renum[seen] = np.arange(1, int(seen.sum()) + 1, dtype=np.int32)
        inst = renum[inst]
    cls = np.asarray(sc.cls, dtype=np.uint8)
    mask = np.take(cls, seg)
    instances = np.take(inst, seg)
    boundaries = _key_boundaries(np.take(inst * 16 + cls, seg))

    # Luminance: textured noise per segment x window/tile patterns x shadows x lighting.
    bank = _noise_bank(height, width)
    oy, ox = r.int(0, height), r.int(0, width)
    fine = bank[oy : oy + height, ox : ox + width]
    cm = max(2, height // 32)
    oy, ox = r.int(0, height), r.int(0, width)
    mid = cv2.resize(bank[oy : oy + height // cm + 2, ox : ox + width // cm + 2], (width, height))
    cl = max(4, height // 6)
    low = rng.random((height // cl + 2, width // cl + 2), dtype=np.float32) * 2 - 1
    low = cv2.resize(low, (width, height))
    amps = _TEX_TABLE[:, np.asarray(sc.tex, dtype=np.intp)]
    lum = np.take(amps[0], seg) * fine
    lum += np.take(amps[1], seg) * mid
    lum += np.take(amps[2], seg) * low
    ribs = np.cos(
        np.arange(width, dtype=np.float32) * np.float32(np.pi / 2) + np.float32(r(0, 6.3))
    )
    lum += np.take(amps[3], seg) * ribs[None, :]
    lum += 1.0
    lum *= pattern
    shadow = (shade > 0) & (seg > _SKY_SEG) & (seg < _N_GROUND)
    lum[shadow] *= r(0.45, 0.65)
    ys = np.arange(height, dtype=np.float32)[:, None] * (1 / height) - 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] * (1 / width) - 0.5
    lum *= (1 + r(-0.2, 0.2) * ys) + r(-0.25, 0.25) * xs

    # Colour, one channel plane at a time (cheaper than [H,W,3] broadcasts): per-segment colour,
    # the sky graded towards haze at the horizon, brightness and white balance.
    gain = (
        r(0.65, 1.2) * 255.0 * np.asarray([r(0.92, 1.08), r(0.95, 1.05), r(0.92, 1.08)], np.float32)
    )
    col = np.asarray(sc.col, dtype=np.float32).reshape(-1, 3) * gain
    t = np.clip(np.arange(height, dtype=np.float32) / max(sc.y_h, 1.0), 0, 1)[:, None] ** 1.5
    sky_rows = (
        np.asarray(sc.sky_top, np.float32) * (1 - t) + np.asarray(sc.sky_haze, np.float32) * t
    ) * gain
    sky = seg == _SKY_SEG
    gamma = r(0.8, 1.25)
    lut = (255.0 * (np.arange(256) / 255.0) ** gamma + 0.5).astype(np.uint8)
    planes = []
    for c in range(3):
        plane = np.take(col[:, c], seg)
        np.copyto(plane, sky_rows[:, c : c + 1], where=sky)
        plane *= lum
        planes.append(cv2.LUT(cv2.convertScaleAbs(plane), lut))  # saturating float -> uint8
    img = cv2.merge(planes)
    img = cv2.GaussianBlur(img, (0, 0), r(0.3, 0.7) * math.sqrt(height / 96))
    return {"image": img, "mask": mask, "instances": instances, "boundaries": boundaries}


def _key_boundaries(key: np.ndarray) -> np.ndarray:
    """Pixels whose key differs from a 4-neighbour's: bool [H,W] from any [H,W] labels."""
    out = np.zeros(key.shape, dtype=bool)
    dh = key[:, 1:] != key[:, :-1]
    out[:, 1:] |= dh
    out[:, :-1] |= dh
    dv = key[1:, :] != key[:-1, :]
    out[1:, :] |= dv
    out[:-1, :] |= dv
    return out


def segment_boundaries(mask: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Pixels whose (class, instance) differs from a 4-neighbour: bool [H,W] from [H,W] labels."""
    return _key_boundaries(instances.astype(np.int64) * 256 + mask)
