"""camnode: the camera node."""

__version__ = "0.1.0"
