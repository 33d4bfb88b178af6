"""camnode: a camera node for home automation.

The installed package is `camnode`; in the repository its parts stay at the top:
`node/` (camera, pipeline, commands, MQTT) is `camnode.node`, `web/` (Tornado workers)
is `camnode.web`, `processors/` is `camnode.processors`, `schemas/` holds the JSON
Schemas as package data. This folder holds only the entry point, above both halves.
"""

from camnode.node import __version__

__all__ = ["__version__"]
