"""Unit tests for node.synthetic: the synthetic camera scene used as ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from camnode.node.synthetic import NOISE_LEVEL, SceneObject, SyntheticScene, jpeg_size

SIZES = [(320, 240), (640, 480), (1280, 720), (1920, 1080)]
EMPTY_T = 1.0  # the room is empty at 0-2 s and 10-12 s of each 12 s period


def _px_box(obj: SceneObject, width: int, height: int) -> tuple[float, float, float, float]:
    left, top, right, bottom = obj.box
    return left * width / 100, top * height / 100, right * width / 100, bottom * height / 100


def _changed(scene: SyntheticScene, t: float) -> np.ndarray:
    """Boolean HxW mask of pixels that differ from the empty room (scene without noise)."""
    diff = np.abs(scene.render(t).astype(np.int16) - scene.render(EMPTY_T).astype(np.int16))
    return diff.max(axis=2) > 0


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_render_returns_bgr_uint8_frame_of_requested_size(width: int, height: int) -> None:
    scene = SyntheticScene(width, height)
    for t in (0.0, 5.0, 6.5):
        frame = scene.render(t)
        assert frame.shape == (height, width, 3)
        assert frame.dtype == np.uint8


def test_render_into_out_buffer_fills_and_returns_it() -> None:
    scene = SyntheticScene(320, 240)
    out = np.zeros((240, 320, 3), np.uint8)
    result = scene.render(5.0, out=out)
    assert result is out
    assert np.array_equal(out, scene.render(5.0))


@pytest.mark.parametrize(
    "bad", [np.zeros((240, 320, 3), np.float32), np.zeros((240, 321, 3), np.uint8)]
)
def test_render_rejects_out_buffer_of_wrong_shape_or_dtype(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        SyntheticScene(320, 240).render(1.0, out=bad)


@pytest.mark.parametrize("t", [1.0, 3.5, 5.0, 6.5, 9.0, 11.0])
def test_jpeg_at_640x480_q80_is_as_large_as_a_real_room(t: float) -> None:
    size_kb = jpeg_size(SyntheticScene(640, 480).render(t), quality=80) / 1024
    assert 30 <= size_kb <= 50, f"{size_kb:.1f} KB at t={t}"


def test_frame_is_textured_not_flat() -> None:
    frame = SyntheticScene(640, 480).render(EMPTY_T)
    assert frame.std() > 25
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 5000


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("t", [2.1, 3.0, 5.0, 6.2, 7.9, 9.0, 9.9])
def test_ground_truth_boxes_match_drawn_pixels(width: int, height: int, t: float) -> None:
    scene = SyntheticScene(width, height, noise=False)
    objects = scene.objects_at(t)
    assert objects, f"expected an object at t={t}"
    changed = _changed(scene, t)
    covered = np.zeros_like(changed)
    for obj in objects:
        left, top, right, bottom = _px_box(obj, width, height)
        # Region around the box, 2 px margin, to find where this object's pixels are.
        x0, y0 = max(int(left) - 2, 0), max(int(top) - 2, 0)
        x1, y1 = min(int(np.ceil(right)) + 2, width), min(int(np.ceil(bottom)) + 2, height)
        covered[y0:y1, x0:x1] = True
        ys, xs = np.nonzero(changed[y0:y1, x0:x1])
        assert len(xs), f"{obj.label} not drawn at t={t}"
        drawn = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
        assert np.allclose(drawn, (left, top, right, bottom), atol=1.0), (obj, drawn)
        # The object fills much of its box (most of it when fully in view).
        inside = changed[int(np.ceil(top)):int(bottom), int(np.ceil(left)):int(right)]
        at_edge = obj.box[0] == 0.0 or obj.box[2] == 100.0
        assert inside.mean() > (0.4 if at_edge else 0.7), f"{obj.label} fills {inside.mean():.0%}"
    assert not changed[~covered].any(), "pixels changed outside every ground-truth box"


def test_objects_differ_strongly_from_the_room() -> None:
    scene = SyntheticScene(640, 480)
    frame, empty = scene.render(6.2).astype(np.int16), scene.render(EMPTY_T).astype(np.int16)
    for obj in scene.objects_at(6.2):
        left, top, right, bottom = (int(round(v)) for v in _px_box(obj, 640, 480))
        diff = np.abs(frame - empty)[top:bottom, left:right].max(axis=2)
        assert np.median(diff) > 40, obj.label


def test_no_objects_in_the_empty_periods() -> None:
    scene = SyntheticScene()
    for t in (0.0, 0.5, 1.0, 1.99, 2.0, 10.0, 10.5, 11.9):
        assert scene.objects_at(t) == [], t


def test_person_enters_at_left_edge_crosses_and_leaves_at_right_edge() -> None:
    scene = SyntheticScene()
    [entering] = scene.objects_at(2.05)
    assert entering.label == "person"
    assert entering.box[0] == 0.0 and 0.0 < entering.box[2] < 5.0
    [middle] = scene.objects_at(5.0)
    assert middle.label == "person"
    assert (middle.box[0] + middle.box[2]) / 2 == pytest.approx(50.0, abs=0.5)
    assert middle.box[3] - middle.box[1] > 2 * (middle.box[2] - middle.box[0])  # tall
    leaving = [o for o in scene.objects_at(7.95) if o.label == "person"]
    assert leaving[0].box[2] == 100.0 and leaving[0].box[0] > 95.0
    assert all(o.label != "person" for o in scene.objects_at(8.0))


def test_ball_rolls_right_to_left_in_the_lower_part() -> None:
    scene = SyntheticScene()
    lefts = []
    for t in np.arange(5.05, 10.0, 0.25):
        [ball] = [o for o in scene.objects_at(float(t)) if o.label == "ball"]
        assert ball.box[1] > 75.0
        lefts.append(ball.box[0])
    assert all(a > b for a, b in zip(lefts, lefts[1:]))
    [entering] = [o for o in scene.objects_at(5.05) if o.label == "ball"]
    assert entering.box[2] == 100.0
    [leaving] = scene.objects_at(9.95)
    assert leaving.label == "ball" and leaving.box[0] == 0.0


def test_boxes_are_valid_percentages_throughout_the_period() -> None:
    scene = SyntheticScene(1280, 720)
    for t in np.arange(0.0, 12.0, 0.05):
        for obj in scene.objects_at(float(t)):
            left, top, right, bottom = obj.box
            assert 0.0 <= left < right <= 100.0
            assert 0.0 <= top < bottom <= 100.0


def test_empty_periods_are_static_up_to_sensor_noise() -> None:
    scene = SyntheticScene()
    a = scene.render(0.5).astype(np.int16)
    for t in (1.5, 10.5, 11.7):
        diff = np.abs(scene.render(t).astype(np.int16) - a)
        assert diff.max() <= 2 * NOISE_LEVEL <= 3, t
    assert np.abs(a - scene.background).max() <= NOISE_LEVEL


def test_sensor_noise_is_present_but_can_be_disabled() -> None:
    noisy = SyntheticScene()
    assert any(not np.array_equal(noisy.render(0.5), noisy.render(t)) for t in (0.6, 0.7, 0.8))
    clean = SyntheticScene(noise=False)
    assert np.array_equal(clean.render(0.5), clean.render(1.5))
    assert np.array_equal(clean.render(0.5), clean.background)


def test_scene_repeats_every_period() -> None:
    scene = SyntheticScene(320, 240, noise=False)
    for t in (1.0, 3.3, 6.2, 9.1):
        assert scene.objects_at(t) == scene.objects_at(t + 12.0)
        assert np.array_equal(scene.render(t), scene.render(t + 24.0))


def test_custom_period_scales_the_timeline() -> None:
    fast, slow = SyntheticScene(period=6.0), SyntheticScene(period=12.0)
    for t in (0.5, 1.5, 2.5, 3.1, 4.5, 5.5):
        assert fast.objects_at(t) == slow.objects_at(2 * t)


def test_same_seed_gives_identical_frames() -> None:
    a, b = SyntheticScene(seed=7), SyntheticScene(seed=7)
    for t in (0.3, 4.0, 6.2):
        assert np.array_equal(a.render(t), b.render(t))
        assert a.objects_at(t) == b.objects_at(t)


def test_different_seed_gives_a_different_room() -> None:
    assert not np.array_equal(SyntheticScene(seed=1).background, SyntheticScene(seed=2).background)


def test_background_is_read_only() -> None:
    with pytest.raises(ValueError):
        SyntheticScene(320, 240).background[0, 0] = 0


def test_scene_object_is_immutable() -> None:
    obj = SceneObject("person", (1.0, 2.0, 3.0, 4.0))
    with pytest.raises(AttributeError):
        obj.label = "ball"  # type: ignore[misc]
