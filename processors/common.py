"""Helpers shared by processing modules: ROI/colour tables and drawing.

Threading: the node's single pipeline thread calls :func:`configure` whenever the
ROI or colour table changes, and then calls the modules' ``process_image(src)``,
which use the helpers below.  ``configure`` builds fresh tables and publishes
them with one assignment, so a reader always sees a consistent (rois, colours)
pair; :func:`current_rois` / :func:`current_colours` hand out copies.

ROIs are stored by name as percentages (0..100, floats allowed) of the frame::

    {"AccessPoint_1": {"left": 10, "top": 20, "right": 40, "bottom": 80, "colour": "green"}}

Colours are named BGR triples: ``{"red": [0, 0, 255], ...}``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal, Mapping, Sequence, Union

import cv2
import numpy as np

log = logging.getLogger(__name__)

BGR = tuple[int, int, int]
Colour = Union[str, Sequence[int], None]

DEFAULT_COLOURS: dict[str, BGR] = {
    "red": (0, 0, 255),
    "green": (0, 255, 0),
    "blue": (255, 0, 0),
    "yellow": (0, 255, 255),
    "cyan": (255, 255, 0),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "orange": (0, 165, 255),
    "purple": (128, 0, 128),
}
FALLBACK_COLOUR: BGR = DEFAULT_COLOURS["green"]
_EDGES = ("left", "top", "right", "bottom")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_FONT_SCALE = 0.4  # smaller glyphs are a few px tall and unreadable

# (rois, colours), replaced as a whole by configure(); never mutated in place.
_tables: tuple[dict[str, dict[str, Any]], dict[str, BGR]] = ({}, dict(DEFAULT_COLOURS))
_reported_unknown: set[str] = set()


def _to_bgr(value: Sequence[int]) -> BGR:
    """Convert a 3-element sequence to a clamped BGR int triple (ValueError if not 3 long)."""
    if len(value) != 3:
        raise ValueError(f"expected 3 components, got {len(value)}")
    b, g, r = (min(255, max(0, int(c))) for c in value)
    return (b, g, r)


def configure(rois: Mapping[str, Mapping], colours: Mapping[str, Sequence[int]]) -> None:
    """Replace the ROI and colour tables (pipeline thread, before ``process_image``).

    Invalid entries are logged and skipped rather than failing later per frame.
    """
    global _tables, _reported_unknown
    new_rois: dict[str, dict[str, Any]] = {}
    for name, roi in rois.items():
        try:
            entry = dict(roi)
            entry.update({edge: float(roi[edge]) for edge in _EDGES})
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("Skipping ROI %r: %s", name, exc)
            continue
        new_rois[str(name)] = entry
    new_colours: dict[str, BGR] = {}
    for name, value in colours.items():
        try:
            new_colours[str(name)] = _to_bgr(value)
        except (TypeError, ValueError) as exc:
            log.warning("Skipping colour %r: %s", name, exc)
    _tables = (new_rois, new_colours)
    _reported_unknown = set()
    log.debug("Configured %d ROIs and %d colours", len(new_rois), len(new_colours))


def current_rois() -> dict[str, dict[str, Any]]:
    """Return a copy of the configured ROI table (any thread)."""
    return {name: dict(roi) for name, roi in _tables[0].items()}


def current_colours() -> dict[str, BGR]:
    """Return a copy of the configured colour table (any thread)."""
    return dict(_tables[1])


def resolve_colour(colour: Colour) -> BGR:
    """Turn a colour name (configured table, then DEFAULT_COLOURS) or BGR triple into BGR.

    ``None`` (unspecified) gives :data:`FALLBACK_COLOUR` silently; unknown names and
    unusable values give it too, logged at debug.
    """
    if colour is None:
        return FALLBACK_COLOUR
    if isinstance(colour, str):
        key = colour.strip()
        for table in (_tables[1], DEFAULT_COLOURS):
            if key in table:
                return table[key]
            if key.lower() in table:
                return table[key.lower()]
    else:
        try:
            return _to_bgr(colour)
        except (TypeError, ValueError):
            pass
    log.debug("Unknown colour %r, using fallback %s", colour, FALLBACK_COLOUR)
    return FALLBACK_COLOUR


def _round(value: float) -> int:
    """Round half up (Python's round() is half-to-even)."""
    return int(math.floor(value + 0.5))


def roi_to_pixels(roi: Mapping[str, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Convert a percent ROI to slice-style pixels ``(x1, y1, x2, y2)`` (x2/y2 exclusive).

    Rounds half up and clamps to the frame; swapped edges are reordered and a
    zero-size ROI becomes 1 px, so ``x2 > x1`` and ``y2 > y1`` for any non-empty frame.
    """
    def axis(lo: float, hi: float, size: int) -> tuple[int, int]:
        lo, hi = sorted((float(lo), float(hi)))
        p1 = min(max(_round(lo * size / 100.0), 0), max(size - 1, 0))
        p2 = min(max(_round(hi * size / 100.0), p1 + 1), max(size, p1 + 1))
        return p1, p2

    x1, x2 = axis(roi["left"], roi["right"], width)
    y1, y2 = axis(roi["top"], roi["bottom"], height)
    return x1, y1, x2, y2


def pixels_to_roi(x1: int, y1: int, x2: int, y2: int, width: int, height: int) -> dict[str, float]:
    """Inverse of :func:`roi_to_pixels`: pixels to percent, rounded to 2 decimals."""
    return {
        "left": round(x1 * 100.0 / width, 2),
        "top": round(y1 * 100.0 / height, 2),
        "right": round(x2 * 100.0 / width, 2),
        "bottom": round(y2 * 100.0 / height, 2),
    }


def _lookup(name: str, rois: Mapping[str, Mapping] | None) -> Mapping | None:
    """Find ROI ``name``; unknown names are logged at debug once per configuration."""
    roi = (_tables[0] if rois is None else rois).get(name)
    if roi is None and name not in _reported_unknown:
        _reported_unknown.add(name)
        log.debug("Unknown ROI %r", name)
    return roi


def isolate_roi(src: np.ndarray, name: str,
                rois: Mapping[str, Mapping] | None = None) -> np.ndarray | Literal[False]:
    """Return a view (not a copy) of ROI ``name`` in ``src``, or False if unknown.

    Edits to the returned array reach ``src``. ``rois`` defaults to the configured table.
    """
    roi = _lookup(name, rois)
    if roi is None:
        return False
    x1, y1, x2, y2 = roi_to_pixels(roi, src.shape[1], src.shape[0])
    return src[y1:y2, x1:x2]


def _text_masks(text: str, font_scale: float, thickness: int,
                radius: int) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int, int]]:
    """Render ``text`` into an alpha mask plus a dilated outline mask (padded canvas).

    Masks are used instead of a second, thicker putText because OpenCV 5 maps
    ``thickness`` to font weight, so a thicker stroke cannot form an outline.
    Returns ``(text_mask, outline_mask, pad, (tw, th, baseline))``.
    """
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    pad = radius + th // 2 + 2  # room for bearings, descenders and the outline
    mask = np.zeros((th + baseline + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(mask, text, (pad, pad + th), _FONT, font_scale, 255, thickness, cv2.LINE_AA)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return mask, cv2.dilate(mask, kernel), pad, (tw, th, baseline)


def draw_text(src: np.ndarray, text: str, org: tuple[int, int] | None = None, scale: float = 1.0,
              colour: Colour = (255, 255, 255), outline: Colour = (0, 0, 0),
              anchor: str = "top-left") -> tuple[int, int, int, int]:
    """Draw outlined ``text`` on the BGR frame ``src`` in place; return the drawn box.

    Size, stroke and outline scale with frame height (same look at 480p and 1080p);
    the stroke is never thinner than 1 px nor the font smaller than MIN_FONT_SCALE.
    ``anchor`` says which point of the text box ``org`` is:
    ``"<top|center|bottom>-<left|center|right>"`` or ``"center"``. Without ``org``
    the anchored corner sits a small margin from the matching frame corner.
    ``outline=None`` disables the outline. The returned ``(x1, y1, x2, y2)``
    bounds the drawn pixels and may extend past the frame (drawing is clipped).
    """
    height, width = src.shape[:2]
    font_scale = max(scale * height / 720.0 * 0.8, MIN_FONT_SCALE)
    thickness = max(1, _round(font_scale * 2))  # never 0 (the seed's int(h / 1000) bug)
    radius = max(1, _round(font_scale * 1.5))
    vertical, _, horizontal = anchor.partition("-") if anchor != "center" else ("center", "", "center")
    if org is None:
        margin = max(2, _round(height * 0.01))
        ox = {"left": margin, "right": width - margin}.get(horizontal, width // 2)
        oy = {"top": margin, "bottom": height - margin}.get(vertical, height // 2)
    else:
        ox, oy = int(org[0]), int(org[1])
    if not text:
        return ox, oy, ox, oy
    mask, ring, pad, (tw, th, baseline) = _text_masks(text, font_scale, thickness, radius)
    box_w, box_h = tw + 2 * radius, th + baseline + 2 * radius
    x1 = {"left": ox, "right": ox - box_w}.get(horizontal, ox - box_w // 2)
    y1 = {"top": oy, "bottom": oy - box_h}.get(vertical, oy - box_h // 2)
    off_x, off_y = x1 + radius - pad, y1 + radius - pad  # canvas origin in frame coordinates
    ink = ring if outline is not None else mask
    ys, xs = np.nonzero(ink)
    if xs.size == 0:
        return x1, y1, x1 + box_w, y1 + box_h
    bx1, by1, bx2, by2 = off_x + xs.min(), off_y + ys.min(), off_x + xs.max() + 1, off_y + ys.max() + 1
    cx1, cy1, cx2, cy2 = max(bx1, 0), max(by1, 0), min(bx2, width), min(by2, height)
    if cx1 < cx2 and cy1 < cy2:
        region = src[cy1:cy2, cx1:cx2]
        window = (slice(cy1 - off_y, cy2 - off_y), slice(cx1 - off_x, cx2 - off_x))
        out = region.astype(np.float32)
        layers = ((ring, outline), (mask, colour)) if outline is not None else ((mask, colour),)
        for alpha_mask, layer_colour in layers:
            alpha = alpha_mask[window][..., None].astype(np.float32) / 255.0
            out += (np.float32(resolve_colour(layer_colour)) - out) * alpha
        region[...] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return int(bx1), int(by1), int(bx2), int(by2)


def draw_roi(src: np.ndarray, name: str, colour: Colour = None, label: bool = True,
             thickness: int | None = None, rois: Mapping[str, Mapping] | None = None) -> bool:
    """Draw ROI ``name`` as a rectangle, labelled with its name; False if unknown.

    ``colour`` (name or BGR) overrides the ROI's own colour; ``thickness``
    defaults to a value scaled to the frame height (at least 1).
    """
    roi = _lookup(name, rois)
    if roi is None:
        return False
    height, width = src.shape[:2]
    x1, y1, x2, y2 = roi_to_pixels(roi, width, height)
    bgr = resolve_colour(colour if colour is not None else roi.get("colour"))
    thick = max(1, int(thickness) if thickness is not None else _round(height / 360.0))
    cv2.rectangle(src, (x1, y1), (x2 - 1, y2 - 1), bgr, thick)
    if label:
        pad = thick + max(1, _round(height * 0.005))
        b, g, r = bgr
        outline = (255, 255, 255) if 0.114 * b + 0.587 * g + 0.299 * r < 60 else (0, 0, 0)
        draw_text(src, name, org=(x1 + pad, y1 + pad), scale=0.6, colour=bgr, outline=outline)
    return True


def draw_rois(src: np.ndarray, label: bool = True, rois: Mapping[str, Mapping] | None = None) -> int:
    """Draw every ROI (configured table unless ``rois`` given); return how many were drawn."""
    table = _tables[0] if rois is None else rois
    return sum(draw_roi(src, name, label=label, rois=table) for name in list(table))


# Seed-era names, kept so older processing modules keep working.
def draw_detections(src: np.ndarray, detections: Sequence[Mapping], colour: Colour = "red",
                    label: bool = True) -> None:
    """Boxes of detections (`box_pct` in percent, or `box` in pixels) with their labels."""
    h, w = src.shape[:2]
    bgr = resolve_colour(colour)
    thickness = max(1, h // 240)
    for d in detections:
        if "box_pct" in d:
            l, t, r, b = d["box_pct"]
            x1, y1, x2, y2 = (round(l * w / 100), round(t * h / 100), round(r * w / 100),
                              round(b * h / 100))
        else:
            x1, y1, x2, y2 = (int(v) for v in d["box"])
        cv2.rectangle(src, (x1, y1), (x2, y2), bgr, thickness)
        if label and d.get("label"):
            draw_text(src, str(d["label"]), (x1 + thickness + 2, y1 + thickness + 2), scale=0.5,
                      colour=bgr)


def with_defaults(params_schema: Mapping, params: Mapping) -> dict:
    """`params` completed with the `default` of every property of a module's
    PARAMS_SCHEMA (the node has already validated `params` against it)."""
    defaults = {k: v["default"] for k, v in params_schema.get("properties", {}).items()
                if "default" in v}
    return {**defaults, **params}


isolateROI = isolate_roi
drawROI = draw_roi
DrawText = draw_text
drawROIs = draw_rois
