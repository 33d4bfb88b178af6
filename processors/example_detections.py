"""Example: a module that reports detections.

Finds strongly red regions (a red shirt, a red car) and reports each as a `red_object`
detection. The node turns detections into tracked objects with stable ids, MQTT
`events` (new/update/end), per-ROI occupancy and counts, and snapshots. Return
`(frame, detections)`; each detection is a dict with `label`, optional `score` (0..1)
and `box` in pixels `(x1, y1, x2, y2)` (or `box_pct` in percent).
"""

import cv2
import numpy as np

from camnode.processors.common import draw_detections


def process_image(src):
    hsv = cv2.cvtColor(src, cv2.COLOR_BGR2HSV)
    red = cv2.inRange(hsv, (0, 120, 80), (8, 255, 255)) | cv2.inRange(hsv, (172, 120, 80),
                                                                       (180, 255, 255))
    red = cv2.morphologyEx(red, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(red)
    min_area = src.shape[0] * src.shape[1] * 0.005
    detections = [{"label": "red_object", "score": 0.8, "box": (int(x), int(y), int(x + w),
                                                                int(y + h))}
                  for x, y, w, h, area in stats[1:] if area >= min_area]
    draw_detections(src, detections, "yellow")
    return src, detections
