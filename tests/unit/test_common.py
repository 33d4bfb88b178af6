"""Unit tests for processors.common (ROI tables, conversions and drawing helpers)."""

from __future__ import annotations

import numpy as np
import pytest

from camnode.processors import common
from camnode.processors.common import (
    DEFAULT_COLOURS,
    configure,
    current_colours,
    current_rois,
    draw_roi,
    draw_rois,
    draw_text,
    isolate_roi,
    pixels_to_roi,
    resolve_colour,
    roi_to_pixels,
)

GREY = 128


@pytest.fixture(autouse=True)
def _reset_tables():
    configure({}, DEFAULT_COLOURS)
    yield
    configure({}, DEFAULT_COLOURS)


def grey_frame(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def changed_bbox(frame: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero((frame != GREY).any(axis=2))
    assert xs.size, "nothing was drawn"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_isolate_roi_returns_view_that_writes_through_to_source():
    configure({"door": {"left": 10, "top": 20, "right": 40, "bottom": 80}}, DEFAULT_COLOURS)
    frame = np.zeros((480, 640, 3), np.uint8)
    view = isolate_roi(frame, "door")
    assert view.shape == (288, 192, 3)
    assert np.shares_memory(view, frame)
    view[0, 0] = (1, 2, 3)
    view[-1, -1] = (4, 5, 6)
    assert tuple(frame[96, 64]) == (1, 2, 3)
    assert tuple(frame[383, 255]) == (4, 5, 6)
    assert int(frame.sum()) == 21


def test_isolate_roi_uses_explicit_table_over_configured_one():
    frame = np.zeros((100, 200, 3), np.uint8)
    view = isolate_roi(frame, "x", rois={"x": {"left": 0, "top": 0, "right": 50, "bottom": 50}})
    assert view.shape == (50, 100, 3)


def test_isolate_roi_unknown_name_returns_false():
    assert isolate_roi(np.zeros((10, 10, 3), np.uint8), "nope") is False


def test_roi_to_pixels_exact_at_640x480():
    roi = {"left": 10, "top": 20, "right": 40, "bottom": 80}
    assert roi_to_pixels(roi, 640, 480) == (64, 96, 256, 384)


def test_roi_to_pixels_exact_at_1920x1080_with_float_percentages():
    roi = {"left": 12.5, "top": 33.33, "right": 75, "bottom": 100}
    assert roi_to_pixels(roi, 1920, 1080) == (240, 360, 1440, 1080)


def test_roi_to_pixels_clamps_to_frame():
    roi = {"left": -10, "top": -5, "right": 150, "bottom": 120}
    assert roi_to_pixels(roi, 640, 480) == (0, 0, 640, 480)


def test_roi_to_pixels_zero_size_roi_becomes_one_pixel():
    assert roi_to_pixels({"left": 50, "top": 50, "right": 50, "bottom": 50}, 640, 480) == (320, 240, 321, 241)
    assert roi_to_pixels({"left": 100, "top": 100, "right": 100, "bottom": 100}, 640, 480) == (639, 479, 640, 480)
    assert roi_to_pixels({"left": 0, "top": 0, "right": 0, "bottom": 0}, 2, 2) == (0, 0, 1, 1)


def test_roi_to_pixels_reorders_swapped_edges():
    assert roi_to_pixels({"left": 40, "top": 80, "right": 10, "bottom": 20}, 640, 480) == (64, 96, 256, 384)


def test_pixels_to_roi_gives_percent_rounded_to_two_decimals():
    assert pixels_to_roi(64, 96, 256, 384, 640, 480) == {"left": 10.0, "top": 20.0, "right": 40.0, "bottom": 80.0}
    assert pixels_to_roi(1, 1, 2, 2, 3, 3) == {"left": 33.33, "top": 33.33, "right": 66.67, "bottom": 66.67}


@pytest.mark.parametrize("width,height", [(640, 480), (1920, 1080), (1280, 720), (160, 120)])
@pytest.mark.parametrize("box", [(0, 0, 1, 1), (13, 7, 101, 99), (33, 17, 77, 61)])
def test_pixels_roi_round_trip_is_exact(width, height, box):
    x1, y1, x2, y2 = box
    roi = pixels_to_roi(x1, y1, x2, y2, width, height)
    assert roi_to_pixels(roi, width, height) == box


def test_draw_text_is_visible_on_small_frames():
    frame = grey_frame(160, 120)
    draw_text(frame, "Hello")
    assert (frame.min(axis=2) >= 200).any(), "text stroke was zero-width"
    assert (frame.max(axis=2) <= 60).any(), "outline stroke was zero-width"


def test_draw_text_size_scales_with_frame_height():
    heights = {}
    for width, height in ((640, 480), (1280, 960)):
        frame = grey_frame(width, height)
        draw_text(frame, "Hg")
        x1, y1, x2, y2 = changed_bbox(frame)
        heights[height] = y2 - y1
    assert heights[960] / heights[480] == pytest.approx(2.0, rel=0.25)


def test_draw_text_returns_bounding_box_of_drawn_pixels():
    frame = grey_frame(640, 480)
    box = draw_text(frame, "jqy Wg", org=(300, 200))
    assert box == changed_bbox(frame)


@pytest.mark.parametrize("anchor", ["top-left", "bottom-right", "center"])
def test_draw_text_anchor_places_text_relative_to_org(anchor):
    frame = grey_frame(640, 480)
    x1, y1, x2, y2 = draw_text(frame, "Anchor", org=(320, 240), anchor=anchor)
    slack = 4  # font side bearings / empty space above lowercase glyphs
    if anchor == "top-left":
        assert 320 <= x1 <= 320 + slack and 240 <= y1 <= 240 + 2 * slack
    elif anchor == "bottom-right":
        assert 320 - slack <= x2 <= 320 and 240 - slack <= y2 <= 240
    else:
        assert abs((x1 + x2) / 2 - 320) <= slack and abs((y1 + y2) / 2 - 240) <= slack


def test_draw_text_outlines_white_text_in_black():
    frame = grey_frame(640, 480)
    draw_text(frame, "Outline", org=(50, 50))
    white = frame.min(axis=2) >= 200
    black = frame.max(axis=2) <= GREY - 40  # dark, allowing for anti-aliased edges
    assert white.any() and black.any()
    wy, wx = np.nonzero(white)
    by, bx = np.nonzero(black)
    # The outline surrounds the text: it reaches beyond the white strokes on every side.
    assert bx.min() < wx.min() and bx.max() > wx.max()
    assert by.min() < wy.min() and by.max() > wy.max()


def test_draw_text_partly_outside_frame_does_not_raise():
    frame = grey_frame(160, 120)
    draw_text(frame, "edge case", org=(-30, -5))
    draw_text(frame, "edge case", org=(150, 115))
    draw_text(frame, "far away", org=(10**6, -(10**6)))


def test_draw_roi_uses_configured_roi_colour():
    configure(
        {"gate": {"left": 25, "top": 25, "right": 75, "bottom": 75, "colour": "orange"}},
        {"orange": [10, 120, 250]},
    )
    frame = grey_frame(640, 480)
    assert draw_roi(frame, "gate") is True
    x1, y1, x2, y2 = roi_to_pixels(current_rois()["gate"], 640, 480)
    mid_x, mid_y = (x1 + x2) // 2, (y1 + y2) // 2
    assert tuple(frame[y2 - 1, mid_x]) == (10, 120, 250)  # bottom edge, away from the label
    assert tuple(frame[mid_y, x2 - 1]) == (10, 120, 250)  # right edge
    assert tuple(frame[mid_y, mid_x]) == (GREY,) * 3  # interior untouched


def test_draw_roi_colour_override_accepts_name_and_triple():
    configure({"gate": {"left": 25, "top": 25, "right": 75, "bottom": 75, "colour": "red"}}, DEFAULT_COLOURS)
    for override, expected in (("blue", (255, 0, 0)), ((1, 2, 3), (1, 2, 3))):
        frame = grey_frame(640, 480)
        assert draw_roi(frame, "gate", colour=override, label=False)
        assert tuple(frame[359, 320]) == expected


def test_draw_roi_unknown_name_returns_false_and_draws_nothing():
    frame = grey_frame(64, 48)
    assert draw_roi(frame, "missing") is False
    assert (frame == GREY).all()


def test_draw_rois_draws_all_and_returns_count():
    configure(
        {
            "a": {"left": 0, "top": 0, "right": 50, "bottom": 50, "colour": "red"},
            "b": {"left": 50, "top": 50, "right": 100, "bottom": 100, "colour": "blue"},
        },
        DEFAULT_COLOURS,
    )
    frame = grey_frame(640, 480)
    assert draw_rois(frame, label=False) == 2
    assert tuple(frame[100, 0]) == DEFAULT_COLOURS["red"]
    assert tuple(frame[479, 400]) == DEFAULT_COLOURS["blue"]


def test_resolve_colour_names_triples_and_unknown_fallback():
    configure({}, {"brand": [1, 2, 3]})
    assert resolve_colour("brand") == (1, 2, 3)
    assert resolve_colour("purple") == DEFAULT_COLOURS["purple"]  # falls back to defaults
    assert resolve_colour([9, 8, 7]) == (9, 8, 7)
    assert resolve_colour("no-such-colour") == DEFAULT_COLOURS["green"]
    assert resolve_colour(None) == DEFAULT_COLOURS["green"]


def test_default_colours_cover_named_set():
    expected = {"red", "green", "blue", "yellow", "cyan", "magenta", "white", "black", "orange", "purple"}
    assert expected <= set(DEFAULT_COLOURS)
    assert DEFAULT_COLOURS["red"] == (0, 0, 255)


def test_configure_replaces_tables_and_getters_return_copies():
    configure({"old": {"left": 0, "top": 0, "right": 1, "bottom": 1}}, {"c1": [1, 1, 1]})
    configure({"new": {"left": 5, "top": 5, "right": 9, "bottom": 9}}, {"c2": [2, 2, 2]})
    assert set(current_rois()) == {"new"}
    assert current_colours() == {"c2": (2, 2, 2)}
    current_rois()["new"]["left"] = 99
    current_colours()["c3"] = (3, 3, 3)
    assert current_rois()["new"]["left"] == 5
    assert "c3" not in current_colours()


def test_configure_skips_invalid_entries():
    configure({"bad": {"left": 1}, "ok": {"left": 1, "top": 2, "right": 3, "bottom": 4}}, {"x": [1, 2]})
    assert set(current_rois()) == {"ok"}
    assert current_colours() == {}


def test_seed_aliases_are_the_same_objects():
    assert common.isolateROI is common.isolate_roi
    assert common.drawROI is common.draw_roi
    assert common.DrawText is common.draw_text
    assert common.drawROIs is common.draw_rois
