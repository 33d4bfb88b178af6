"""Passthrough processing module: leaves the frame untouched."""

from __future__ import annotations

import numpy as np

# Leaves frames as they are: the node may publish the camera's own JPEGs without
# decoding them, and skip frames nobody looks at (node/encoder.py).
PASSTHROUGH = True


def process_image(src: np.ndarray) -> bool:
    """Do nothing to ``src`` and report success (called by the pipeline thread)."""
    return True
