"""Lighting analysis of the talent and the plate, at low resolution.

Plate: an order-2 spherical-harmonics environment (9 coefficients per channel). The plate shows what is behind the
talent; what lights the talent's front is behind the camera and unseen, so the front hemisphere is the plate mirrored
through the talent's plane, dimmed (``front_fill``): a bright left side of the plate lights the talent's left side.
From the SH: the plate's illuminant colour and exposure (log-average luminance, weighted toward the talent's
surroundings), and the irradiance on any normal (Ramamoorthi & Hanrahan 2001).

Talent: a skin mask (chromaticity locus), the log-luminance and log-chroma of skin, approximate normals from the matte
(inflation of its distance transform), and its low-frequency shading fitted on those normals.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..colour import LUMA_709

EPS = 1e-4

# Skin tone varies between people far more than one prior can say: a light-to-medium and a dark mode, each with
# its log-luminance (mean, spread) at normal exposure and its log-chroma (dark skin is redder: melanin absorbs blue).
# (weight, log-luma mean, log-luma sd, log-chroma mean (3,), log-chroma sd)
SKIN_MODES = (
    (0.65, -1.45, 0.30, np.array([0.52, -0.12, -0.40], np.float32), 0.12),
    (0.35, -2.20, 0.35, np.array([0.95, -0.06, -0.89], np.float32), 0.15),
)


def skin_posterior(log_luma: float, chroma: np.ndarray, luma_err: float = 0.4, chroma_err: float = 0.2):
    """Most likely (log-luma, log-chroma) of the talent's skin at normal exposure under neutral light, given what
    is measured and how far exposure and white balance may be off (``luma_err``, ``chroma_err``: their spreads).

    Bayesian with the two-mode skin prior: each mode's posterior mean, weighted by how well the mode explains the
    measurement (luminance and chroma together, so saturated dark skin is not taken for under-exposed light skin)."""
    chroma = np.asarray(chroma, np.float64)
    logw, means = [], []
    for w, mu_l, sd_l, mu_c, sd_c in SKIN_MODES:
        v_l, v_c = sd_l ** 2 + luma_err ** 2, sd_c ** 2 + chroma_err ** 2
        ll = -0.5 * (log_luma - mu_l) ** 2 / v_l - 0.5 * np.log(v_l)
        ll += float(-0.5 * ((chroma - mu_c) ** 2).sum() / v_c - 1.5 * np.log(v_c))
        logw.append(np.log(w) + ll)
        k_l = sd_l ** 2 / v_l  # how much of the measurement's deviation from the mode is real
        k_c = sd_c ** 2 / v_c
        means.append((mu_l + k_l * (log_luma - mu_l), mu_c + k_c * (chroma - mu_c)))
    r = np.exp(np.array(logw) - max(logw))
    r /= r.sum()
    post_l = float(sum(ri * m[0] for ri, m in zip(r, means)))
    post_c = sum(ri * m[1] for ri, m in zip(r, means))
    return post_l, (post_c - post_c.mean()).astype(np.float32)


# Log-average luminance of a "normal" plate; darker plates pull the talent down by KEY_ADAPTATION per unit.
PLATE_KEY_REF = -1.2


def log_image(rgb: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(rgb, EPS))


# --- spherical harmonics ----------------------------------------------------------------------------------------------
def sh_basis(n: np.ndarray) -> np.ndarray:
    """Real SH basis up to order 2 for unit normals (..., 3) -> (..., 9)."""
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    return np.stack([
        0.282095 * np.ones_like(x),
        0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
        0.546274 * (x * x - y * y)], axis=-1)


# Convolution of radiance with the clamped cosine (Lambertian) per SH band.
_A = np.array([np.pi] + [2 * np.pi / 3] * 3 + [np.pi / 4] * 5, np.float32)


def plate_environment(plate: np.ndarray, front_fill: float = 0.6, fov_deg: float = 60.0) -> np.ndarray:
    """(h, w, 3) linear plate (small) -> (9, 3) SH radiance coefficients.

    Camera coordinates: x right, y up, z from the talent toward the camera. Plate pixels are directions behind the
    talent (z < 0) within the field of view; their mirror images (z > 0, dimmed by ``front_fill``) stand in for the
    unseen scene behind the camera.
    """
    h, w = plate.shape[:2]
    t = np.tan(np.radians(fov_deg) / 2)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px = (xs + 0.5) / w * 2 - 1
    py = 1 - (ys + 0.5) / h * 2
    d = np.stack([px * t * w / max(w, h), py * t * h / max(w, h), -np.ones_like(px)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    # Widen: spread plate directions over the whole hemisphere so that sides light the sides.
    d[..., :2] *= 2.2
    d[..., 2] = -np.sqrt(np.clip(1 - np.minimum((d[..., :2] ** 2).sum(-1), 0.98), 0.02, 1))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    rad = plate.reshape(-1, 3)
    back = sh_basis(d.reshape(-1, 3))
    front_d = d.reshape(-1, 3) * np.array([1, 1, -1], np.float32)
    front = sh_basis(front_d)
    # Monte-Carlo over both hemispheres (each pixel covers 2*pi / (h*w) steradians of its hemisphere).
    dw = 2 * np.pi / (h * w)
    coeffs = (back.T @ rad + front_fill * (front.T @ rad)) * dw
    return coeffs.astype(np.float32)


def irradiance(coeffs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(9, 3) SH radiance, (..., 3) unit normals -> (..., 3) irradiance (>= 0)."""
    b = sh_basis(normals) * _A
    return np.maximum(b @ coeffs, EPS)


# --- talent -------------------------------------------------------------------------------------------------------------
def skin_mask(rgb_linear: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Skin-coloured pixels inside the matte, by a generous chromaticity test (works for light and dark skin)."""
    lr = log_image(rgb_linear)
    c = lr - lr.mean(-1, keepdims=True)
    y = rgb_linear @ LUMA_709
    warm = (c[..., 0] > 0.12) & (c[..., 0] - c[..., 2] > 0.25) & (c[..., 0] - c[..., 2] < 2.6)
    green_ok = (c[..., 1] > -0.45) & (c[..., 1] < 0.12)
    r, g, b = cv2.split(np.ascontiguousarray(rgb_linear, np.float32))
    lit = (y > 0.01) & (cv2.max(cv2.max(r, g), b) < 0.97)
    return warm & green_ok & lit & (alpha > 0.9)


def matte_normals(alpha: np.ndarray) -> np.ndarray:
    """Approximate normals (h, w, 3) of the talent by inflating its matte (a smooth dome over the silhouette)."""
    inside = (alpha > 0.5).astype(np.uint8)
    if inside.sum() == 0:
        n = np.zeros(alpha.shape + (3,), np.float32)
        n[..., 2] = 1
        return n
    dist = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    # Each part (head, shoulders) gets its own dome: distance relative to the largest distance nearby.
    k = max(3, int(0.35 * max(alpha.shape)) | 1)
    local = cv2.dilate(dist, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))  # separable: fast at any size
    local = cv2.GaussianBlur(local, (0, 0), k / 4) + 1e-3
    t = np.clip(dist / local, 0, 1)
    height = np.sqrt(np.maximum(2 * t - t * t, 0)) * local  # a circular profile of the local radius
    height = cv2.GaussianBlur(height.astype(np.float32), (0, 0), max(1.0, 0.015 * max(alpha.shape)))
    gy, gx = np.gradient(height)
    n = np.stack([-gx, gy, np.ones_like(gx)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return n.astype(np.float32)


def _quantiles(v: np.ndarray, qs) -> list[float]:
    """Quantiles by linear interpolation between order statistics (as ``np.percentile``), via one partition."""
    n = len(v)
    pos = [q * (n - 1) for q in qs]
    ks = sorted({int(np.floor(p)) for p in pos} | {min(n - 1, int(np.floor(p)) + 1) for p in pos})
    part = np.partition(v, ks)
    out = []
    for p in pos:
        k = int(np.floor(p))
        k1 = min(n - 1, k + 1)
        out.append(float(part[k] + (part[k1] - part[k]) * (p - k)))
    return out


@dataclass
class TalentStats:
    log_luma: float  # robust log-luminance of skin (or of the talent when it shows little skin)
    chroma: np.ndarray  # (3,) mean log-RGB minus its mean
    skin_fraction: float


def talent_stats(rgb_linear: np.ndarray, alpha: np.ndarray, skin: np.ndarray | None = None) -> TalentStats:
    if skin is None:
        skin = skin_mask(rgb_linear, alpha)
    region = skin if skin.sum() >= max(30, 0.03 * (alpha > 0.9).sum()) else (alpha > 0.9)
    if region.sum() < 10:
        region = alpha > 0.5
    lr = log_image(rgb_linear[region])
    y = np.log(np.maximum(rgb_linear[region] @ LUMA_709, EPS))
    lo, med, hi = _quantiles(y, (0.1, 0.5, 0.9))
    keep = (y >= lo) & (y <= hi)
    ch = lr[keep].mean(0) if keep.any() else lr.mean(0)
    return TalentStats(med, (ch - ch.mean()).astype(np.float32),
                       float(skin.sum() / max((alpha > 0.9).sum(), 1)))


@dataclass
class PlateStats:
    log_key: float  # log-average luminance
    chroma: np.ndarray  # (3,) illuminant colour as log-RGB minus mean (grey-edge)
    sh: np.ndarray  # (9, 3) environment


@dataclass
class PlateAnalysis:
    """What :func:`plate_stats` reads of a plate that does not depend on the weight: made once per plate frame."""

    y: np.ndarray  # (h, w) log luminance
    valid: np.ndarray  # (h, w) neither clipped nor black
    edges: np.ndarray  # (h, w, 3) gradient magnitude per channel (grey-edge)
    sh: np.ndarray  # (9, 3) environment


def analyse_plate(plate_small: np.ndarray, front_fill: float = 0.6) -> PlateAnalysis:
    """The weight-free part of :func:`plate_stats` for an (h, w, 3) linear plate at low resolution."""
    y = np.log(np.maximum(plate_small @ LUMA_709, EPS))
    valid = (plate_small.max(-1) < 0.985) & (y > np.log(0.002))
    g = cv2.GaussianBlur(np.ascontiguousarray(plate_small, np.float32), (0, 0), 1.0)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0).reshape(-1), cv2.Sobel(g, cv2.CV_32F, 0, 1).reshape(-1))
    return PlateAnalysis(y, valid, mag.reshape(g.shape), plate_environment(plate_small, front_fill))


def plate_stats(plate_small: np.ndarray | PlateAnalysis, weight: np.ndarray | None = None,
                front_fill: float = 0.6) -> PlateStats:
    """(h, w, 3) linear plate at low resolution, or its :func:`analyse_plate` (when several weights are asked of
    one plate); ``weight`` (h, w) emphasises the talent's surroundings."""
    a = plate_small if isinstance(plate_small, PlateAnalysis) else analyse_plate(plate_small, front_fill)
    y = a.y
    w = np.ones(y.shape, np.float32) if weight is None else weight.astype(np.float32)
    w = w * a.valid
    if w.sum() < 1e-3:
        w = np.ones(y.shape, np.float32)
    key = float((y * w).sum() / w.sum())
    # The illuminant's colour by grey-edge (van de Weijer et al. 2007): the mean colour of the plate's edges.
    # Edges are where light meets surfaces; a large evenly coloured surface (a green wall, a backdrop) has none, so
    # it does not pass for coloured light the way it does in the plain grey-world mean.
    edges = (a.edges * w[..., None]).sum((0, 1)) / w.sum()
    ch = np.log(np.maximum(edges, 1e-9))
    return PlateStats(key, (ch - ch.mean()).astype(np.float32), a.sh)


def light_of_sh(sh: np.ndarray) -> tuple[np.ndarray, float]:
    """(unit direction (3,) of the plate's dominant light: x right, y up, z toward the camera; directionality 0 for
    flat ambient light to ~1.5 for a single strong source) from its SH environment (9, 3)."""
    lum_dir = np.array([sh[3] @ LUMA_709, sh[1] @ LUMA_709, sh[2] @ LUMA_709], np.float32)
    ambient = float(sh[0] @ LUMA_709) + 1e-6
    directionality = float(np.clip(np.linalg.norm(lum_dir) / ambient, 0, 1.5))
    n = np.linalg.norm(lum_dir)
    light_dir = lum_dir / n if n > 1e-6 else np.array([0, 1, 1], np.float32) / np.sqrt(2)
    return light_dir.astype(np.float32), directionality
