"""Example: the smallest useful module, written as the seed's modules were.

Copy it, rename it, select it on the page or with `module/set`. It tints the ROI named
"AccessPoint_1" blue (if there is one) and writes a caption. `isolateROI` returns a
numpy view, so editing it edits the frame; it returns False for an unknown ROI name.
"""

from processors.common import DrawText, isolateROI  # the seed's names still work


def process_image(src):
    door = isolateROI(src, "AccessPoint_1")
    if door is not False:
        door[:, :, 0] = 255  # full blue channel inside the ROI
    DrawText(src, "example: minimal", anchor="top-right")
    return True
