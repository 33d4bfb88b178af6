"""Image-processing modules for camnode.

Each module exposes ``process_image(src)`` which edits a BGR frame in place;
shared helpers (ROI tables, drawing) live in :mod:`processors.common`.
"""
