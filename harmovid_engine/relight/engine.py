"""The analytic relighting harmonizer (engine ``analytic``): fast, physically motivated, runs on two CPU cores.

Per frame, at low resolution:
1. analyse the plate (SH environment, illuminant colour by grey-edge, exposure near the talent) and the talent (skin
   log-luminance and log-chroma, normals from the matte, current low-frequency shading);
2. adapt white balance and exposure with a von Kries gain in linear light: the talent's skin is pulled toward what it
   most likely looks like at normal exposure under the plate's illuminant. That comes from a two-mode skin prior
   (light-to-medium and dark skin, each with its luminance and chroma: dark skin is not brightened toward a light
   norm) weighed against the measurement in a Bayesian way (``exposure_error`` / ``white_balance_error``: how far
   off talent footage typically is); ``colour`` / ``intensity`` scale the correction (``colour`` 1 = the default amount;
   ``intensity`` is 0 by default, see its setting);
3. replace the talent's directional shading (an order-1 fit on its normals) by the plate's SH irradiance on the same
   normals (``direction`` strength), coloured by the plate's light;
4. the result is a smooth per-pixel gain field (3 channels) on a coarse grid over the talent; it is upsampled and
   applied to the full-resolution talent, so skin texture and detail are untouched and 1080p stays cheap.

``estimate()`` returns the per-frame parameters (:class:`RelightParams`) and ``apply()`` uses them, so temporal
stages (EMA baseline, deflicker) can work on parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..colour import LUMA_709
from ..engines import Engine
from .analysis import (PLATE_KEY_REF, analyse_plate, irradiance, light_of_sh, log_image, matte_normals, plate_stats,
                       skin_mask, skin_posterior, talent_stats)

EPS_LUM = 1e-5
GRID = 24  # the gain field's resolution over the talent's bounding box (GRID x GRID)
ANALYSIS_SIZE = 128  # long side of the talent crop used for analysis
SHADING_SIZE = 64  # long side used for the directional relight (normals, SH irradiance, the talent's own shading)


@dataclass
class RelightParams:
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 on the canvas
    gain: np.ndarray  # (3,) global log gain (white balance + exposure)
    shade: np.ndarray  # (GRID, GRID, 3) log gain of the directional relight over the bbox
    light_dir: np.ndarray  # (3,) dominant light direction of the plate (x right, y up, z toward camera)
    directionality: float  # 0: flat ambient light, ~1: a single strong source
    frame: tuple[int, int] | None = None  # (w, h) of the frame bbox refers to

    def field(self) -> np.ndarray:
        return self.gain[None, None, :] + self.shade

    def blend(self, other: "RelightParams", w: float) -> "RelightParams":
        """(1 - w) * self + w * other (for EMA and temporal filters)."""
        return RelightParams(other.bbox, (1 - w) * self.gain + w * other.gain, (1 - w) * self.shade + w * other.shade,
                             _unit((1 - w) * self.light_dir + w * other.light_dir),
                             (1 - w) * self.directionality + w * other.directionality, other.frame)


def _unit(v):
    n = np.linalg.norm(v)
    return v / n if n > 1e-6 else np.array([0, 1, 1], np.float32) / np.sqrt(2)


def talent_bbox(alpha: np.ndarray, pad: int = 4) -> tuple[int, int, int, int] | None:
    x, y, bw, bh = cv2.boundingRect((alpha > 0.01).view(np.uint8))
    if bw == 0 or bh == 0:
        return None
    h, w = alpha.shape
    return (max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad))


def _resize_long(img: np.ndarray, long_side: int, interp=cv2.INTER_AREA) -> np.ndarray:
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)


class FieldEngine(Engine):
    """An engine whose per-frame parameters are :class:`RelightParams`: a log-gain field over the talent's box."""

    _plate_cache: tuple | None = None

    def plate_analysis(self, plate: np.ndarray, front_fill: float):
        """The plate's lighting analysis at 64 px (``analyse_plate``), cached while the plate does not change."""
        key = (id(plate), plate.shape, float(plate[::37, ::41].sum()), front_fill)
        if self._plate_cache is None or self._plate_cache[0] != key:
            self._plate_cache = (key, analyse_plate(_resize_long(plate, 64), front_fill))
        return self._plate_cache[1]

    # -- application --------------------------------------------------------------------------------------------
    def log_gain(self, shape: tuple[int, int], params: RelightParams):
        """(bbox, (h, w, 3) log-gain field over it) for a frame of ``shape`` = (h, w): the frame the parameters were
        estimated on or a resized copy. The gain is applied weighted by alpha (see :meth:`apply`)."""
        h, w = shape
        fw, fh = params.frame or (w, h)
        x0, y0, x1, y1 = params.bbox
        if (fw, fh) != (w, h):
            sx, sy = w / fw, h / fh
            x0, y0 = int(np.floor(x0 * sx)), int(np.floor(y0 * sy))
            # within the frame: x1 * sx can land a hair above a whole number (float) and ceil one past the edge
            x0, y0 = min(x0, w - 1), min(y0, h - 1)
            x1, y1 = min(w, max(x0 + 1, int(np.ceil(x1 * sx)))), min(h, max(y0 + 1, int(np.ceil(y1 * sy))))
        return (x0, y0, x1, y1), cv2.resize(params.field(), (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)

    def light(self, params: RelightParams | None):
        if params is None:
            return None, 0.5
        return params.light_dir, params.directionality


class AnalyticEngine(FieldEngine):
    name = "analytic"
    defaults = {
        "colour": 1.0,  # strength of white-balance adaptation (0 off, 1 default, up to 2)
        # Strength of exposure adaptation (the skin prior's pull and the plate's key), 0 by default: fitted on
        # train/, every strength above 0 did more harm than good on held-out talent (at 1, the value chosen on the
        # report clips, 56 % of held-out cases came out worse than the untouched composite, the worst 34x; at 0,
        # 52 %, the worst 9.3x, with colour_weight 0.33). An editor can still dial it in (Inspector > Intensity).
        "intensity": 0.0,
        # Strength of the directional relight (1: the plate's shading replaces the talent's), 0 by default: fitted on
        # train/ (lut_static, where the plate is the talent's own scene, so a relight that worked would change
        # nothing), at 1 the held-out talent came out worse than the untouched composite on average (mean fMSE ratio
        # 1.29, the worst case 9.4x); at 0, 0.97 and 1.06x. Inspector > Direction dials it in for a plate whose light
        # differs from the talent's.
        "direction": 0.0,
        # The relight is gated by how directional/coloured the plate's light is (order-1 SH over order-0, worst
        # channel): below ``direction_gate_low`` the plate's light is too diffuse to tell a direction and the talent
        # keeps its own shading; above ``direction_gate_high`` the relight is applied in full.
        "direction_gate_low": 0.3,
        "direction_gate_high": 0.6,
        # How far off exposure and white balance of talent footage typically are (log units): the skin prior's
        # posterior weighs the measurement against the prior with these.
        "exposure_error": 0.5,
        "white_balance_error": 0.2,
        # Share of the skin prior's white-balance correction applied at strength 1. Fitted on ../shared/data/train
        # (benchmarks/fit_analytic.py: lut_static through the render graph, 30 clips fitted, 9 held out;
        # docs/bench/fit_analytic_grid.json): 0.33 (it was 0.67, chosen on the report clips).
        "colour_weight": 0.33,
        "intensity_weight": 1.0,  # share of the posterior's exposure correction applied at strength 1
        # How much of the plate's illuminant colour the talent takes on (Inspector > Plate colour). Fitted on train/
        # with direction 0: 0 (fit score -0.018, worst case 1.09x; 0.15: -0.001, 1.18x; 0.35, the value chosen on
        # the report clips: 0.114, 1.83x).
        "plate_adaptation": 0.0,
        "key_adaptation": 0.5,  # how much a darker/brighter plate darkens/brightens the talent (per log unit)
        "key_deadzone": 1.0,  # plate key deviations (log units) the camera's exposure absorbs
        "front_fill": 0.6,  # brightness of the unseen scene behind the camera relative to the plate
        "max_shade": 0.7,  # limit of the directional relight, in log units (~1 stop)
    }

    limits = {
        "colour": (0.0, 2.0), "intensity": (0.0, 2.0), "direction": (0.0, 2.0), "plate_adaptation": (0.0, 1.0),
        "direction_gate_low": (0.0, 1.0), "direction_gate_high": (0.0, 1.0), "exposure_error": (0.01, 5.0),
        "white_balance_error": (0.01, 5.0), "colour_weight": (0.0, 1.0), "intensity_weight": (0.0, 1.0),
        "key_adaptation": (0.0, 2.0), "key_deadzone": (0.0, 5.0), "front_fill": (0.0, 2.0), "max_shade": (0.0, 3.0),
    }

    # -- estimation ---------------------------------------------------------------------------------------------
    def estimate(self, talent: np.ndarray, alpha: np.ndarray, plate: np.ndarray,
                 placement: tuple[float, float, float] = (0.0, 0.0, 1.0), index: int | None = None
                 ) -> RelightParams | None:
        """talent/alpha are in the talent's own pixels, placed on the plate at ``placement = (x, y, scale)``
        (identity: they are canvas-aligned). The returned bbox is in talent pixels."""
        bbox = talent_bbox(alpha)
        if bbox is None:
            return None
        s = self.settings
        x0, y0, x1, y1 = bbox
        t_small = _resize_long(talent[y0:y1, x0:x1], ANALYSIS_SIZE)
        a_small = _resize_long(alpha[y0:y1, x0:x1], ANALYSIS_SIZE)
        px, py, sc = placement
        ps = self._plate(plate, (px + x0 * sc, py + y0 * sc, px + x1 * sc, py + y1 * sc))
        skin = skin_mask(t_small, a_small)
        ts = talent_stats(t_small, a_small, skin)
        # exposure: skin of normal exposure, shifted by how dark or bright the plate is
        trust = min(1.0, ts.skin_fraction / 0.15)  # little skin visible: weaker pull
        # Cameras expose for the scene, so a plate's brightness moves skin only for low- or high-key scenes:
        # deviations of the plate's key beyond a dead zone carry over partially.
        dev = ps.log_key - PLATE_KEY_REF
        dev = np.sign(dev) * max(abs(dev) - s["key_deadzone"], 0.0)
        # what the skin most likely looks like at normal exposure under neutral light (two-mode skin prior)
        skin_l, skin_c = skin_posterior(ts.log_luma, ts.chroma, s["exposure_error"], s["white_balance_error"])
        target_l = skin_l + s["key_adaptation"] * dev
        d_luma = s["intensity"] * s["intensity_weight"] * trust * (target_l - ts.log_luma)
        # white balance: skin under the plate's illuminant. Where the directional relight carries the plate's light
        # (its colour included), that share of the illuminant's colour is the relight's, not counted twice.
        gate = self.direction_gate(ps.sh)
        relit = min(1.0, s["direction"] * gate)
        target_c = skin_c + s["plate_adaptation"] * (1.0 - relit) * ps.chroma
        d_chroma = s["colour"] * s["colour_weight"] * trust * (target_c - ts.chroma)
        d_chroma = d_chroma - d_chroma @ LUMA_709  # chroma only: luminance is handled by d_luma
        gain = (d_luma + d_chroma).astype(np.float32)
        # the directional relight is a smooth field (GRID x GRID): its analysis runs at half the analysis size
        t_shade, a_shade = _resize_long(t_small, SHADING_SIZE), _resize_long(a_small, SHADING_SIZE)
        skin_shade = cv2.resize(skin.view(np.uint8), a_shade.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
        shade, light_dir, directionality = self._shading(t_shade, a_shade, ps.sh, skin_shade)
        shade = shade * (s["direction"] * gate)
        return RelightParams(bbox, gain, shade, light_dir, directionality, (alpha.shape[1], alpha.shape[0]))

    def _plate(self, plate: np.ndarray, bbox):
        """Plate statistics with more weight near the talent; what does not depend on the weight (the plate's small
        copy, its environment, its edges) is cached while the plate does not change."""
        analysis = self.plate_analysis(plate, self.settings["front_fill"])
        h, w = analysis.y.shape
        H, W = plate.shape[:2]
        x0, y0, x1, y1 = bbox
        cx, cy = (x0 + x1) / 2 / W * w, (y0 + y1) / 2 / H * h
        sx, sy = max((x1 - x0) / W * w, 2), max((y1 - y0) / H * h, 2)
        yy, xx = np.mgrid[0:h, 0:w]
        weight = 1.0 + 2.0 * np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        return plate_stats(analysis, weight)

    def direction_gate(self, sh: np.ndarray) -> float:
        """0..1: how much of the directional relight a plate's light supports (smoothstep between the gates)."""
        ratio = float(np.max(np.linalg.norm(sh[1:4], axis=0) / np.maximum(sh[0], 1e-6)))
        lo, hi = self.settings["direction_gate_low"], self.settings["direction_gate_high"]
        t = float(np.clip((ratio - lo) / max(hi - lo, 1e-6), 0.0, 1.0))
        return t * t * (3 - 2 * t)

    def _shading(self, t_small, a_small, sh, skin):
        """Log-gain field that swaps the talent's directional shading for the plate's, on a GRID x GRID grid."""
        normals = matte_normals(a_small)
        region = a_small > 0.9
        fit_region = skin if skin.sum() > 0.1 * max(region.sum(), 1) else region
        e_plate = irradiance(sh, normals)  # (h, w, 3)
        log_e = log_image(e_plate)
        light_dir, directionality = light_of_sh(sh)
        if fit_region.sum() < 20:
            return np.zeros((GRID, GRID, 3), np.float32), light_dir, directionality
        # The plate's light over the talent, colour included, acting on the talent's albedo (its pixels): pink light
        # makes skin pinker, blue light bluer and darker (skin reflects little blue). Only one number is taken out,
        # so that the relit talent keeps its mean luminance (exposure is the gain's business). (Zero-mean per
        # channel, as before, made the side lit by the pink half of a pink/blue room orange and the blue side olive:
        # each side got the colour of its light relative to the mix of both.)
        lit = t_small[fit_region] * np.exp(log_e[fit_region])
        own = t_small[fit_region]
        new = log_e - float(np.log(max((lit @ LUMA_709).mean(), EPS_LUM) / max((own @ LUMA_709).mean(), EPS_LUM)))
        # talent's current directional shading: order-1 fit of its smoothed log-luminance on the normals
        y = np.log(np.maximum(cv2.GaussianBlur(t_small @ LUMA_709, (0, 0), 2.0), 1e-4))
        nrm = normals[fit_region]
        X = np.concatenate([np.ones((len(nrm), 1), np.float32), nrm], 1)
        coef, *_ = np.linalg.lstsq(X, y[fit_region], rcond=None)
        old = normals @ coef[1:]
        old = old - old[fit_region].mean()
        field = new - old[..., None]
        # Soft limits (no hard edge where a clip would start). The light's mean colour over the talent is a tint, at
        # most a third of max_shade per channel (a face under purple or green stage light takes a tint, not a cast);
        # how the light's colour and brightness vary across the talent (red neon on one side, blue on the other)
        # keeps up to max_shade, so the sides stay apart.
        m = self.settings["max_shade"]
        lum = field @ LUMA_709
        chroma = field - lum[..., None]
        mean_c = chroma[fit_region].mean(0)
        var_c = chroma - mean_c
        tint = (m / 3) * np.tanh(mean_c / (m / 3))
        field = (m * np.tanh(lum / m))[..., None] + tint + m * np.tanh(var_c / m)
        # extend the field smoothly outside the talent (normalised convolution) and reduce it to the grid
        wgt = region.astype(np.float32)
        sig = max(2.0, 0.065 * max(region.shape))  # light wraps smoothly round a face: no seam down the nose
        num = cv2.GaussianBlur(field * wgt[..., None], (0, 0), sig)
        den = cv2.GaussianBlur(wgt, (0, 0), sig)[..., None] + 1e-4
        field = num / den
        grid = cv2.resize(field, (GRID, GRID), interpolation=cv2.INTER_AREA)
        return grid.astype(np.float32), light_dir, directionality
