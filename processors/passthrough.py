"""Passthrough processing module: leaves the frame untouched."""

from __future__ import annotations

import numpy as np


def process_image(src: np.ndarray) -> bool:
    """Do nothing to ``src`` and report success (called by the pipeline thread)."""
    return True
