"""Example: a module with parameters, checked by its own JSON Schema.

`module/set` with `{"name": "example_params", "params": {"level": 0.5}}` validates the
params against PARAMS_SCHEMA (a bad value is refused with its path, and nothing
changes), then calls `setup(params)`. `status()` is optional: what it returns appears
in the node's state as `module_status`. `close()` is called when another module is
selected.
"""

import cv2

from camnode.processors.common import with_defaults

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "level": {"description": "How much to darken the frame (0 = not at all, 1 = black)",
                  "type": "number", "minimum": 0, "maximum": 1, "default": 0.3},
        "grey": {"description": "Show the frame in black and white", "type": "boolean",
                 "default": False},
    },
}

_settings = with_defaults(PARAMS_SCHEMA, {})
_frames = 0


def setup(params):
    _settings.update(with_defaults(PARAMS_SCHEMA, params))  # fill in what was not given


def process_image(src):
    global _frames
    _frames += 1
    src[:] = cv2.convertScaleAbs(src, alpha=1.0 - _settings["level"])
    if _settings["grey"]:
        return cv2.cvtColor(src, cv2.COLOR_BGR2GRAY)  # a new array replaces the frame
    return True


def status():
    return {"frames": _frames, **_settings}


def close():
    pass
