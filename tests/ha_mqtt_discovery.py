"""What Home Assistant's MQTT integration accepts in a device discovery message, and which
entity ids it makes of one, per generation. Test helper: no Home Assistant import.

Written from reading homeassistant/components/mqtt/ (schemas.py, config.py, entity.py,
discovery.py, the platform files) and helpers/entity_platform.py in the wheels of
2024.10.4, 2024.11.3, 2024.12.0, 2025.10.0, 2026.4.0 and 2026.11.0:

- Device discovery (`<prefix>/device/<id>/config`) is absent in 2024.10.4 and present from
  2024.11 (DEVICE_DISCOVERY_SCHEMA: `device`, `origin` and `components` required; the top
  level refuses unknown keys).
- A component's keys go through its platform's DISCOVERY_SCHEMA with REMOVE_EXTRA: an
  unknown key is dropped without a word, a known key with a bad value refuses the entity.
- Entity id: 2024.11-2025.9 use `object_id`; 2025.10-2026.3 use `default_entity_id`
  (`<domain>.<object id>`) before `object_id` (no warning when both are there); from
  2026.4 `object_id` is not in the schema any more (so it is dropped silently). Without
  either, the id is the slug of "<device name> <entity name>" (entity_platform.py); a
  taken id gets `_2`, `_3`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Keys every entity platform accepts (MQTT_ENTITY_COMMON_SCHEMA, availability, SCHEMA_BASE).
_COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "payload_available", "payload_not_available", "device", "entity_picture", "origin",
    "enabled_by_default", "entity_category", "icon", "json_attributes_topic",
    "json_attributes_template", "unique_id", "qos", "encoding", "name",
}
_RO = {"state_topic", "value_template"}
_RW = {"command_topic", "optimistic", "retain", "state_topic"}

# Platform keys (same in every release read, except image_encoding's values).
_PLATFORM = {
    "switch": _RW | {"command_template", "payload_off", "payload_on", "state_off", "state_on",
                     "value_template", "device_class"},
    "select": _RW | {"command_template", "options", "value_template"},
    "sensor": _RO | {"device_class", "expire_after", "force_update",
                     "last_reset_value_template", "options", "suggested_display_precision",
                     "state_class", "unit_of_measurement"},
    "binary_sensor": _RO | {"device_class", "expire_after", "force_update", "off_delay",
                            "payload_off", "payload_on"},
    "image": {"content_type", "url_topic", "image_topic", "image_encoding", "url_template"},
    "camera": {"topic", "image_encoding"},
    "button": {"command_template", "command_topic", "device_class", "payload_press", "retain"},
}
_REQUIRED = {
    "switch": {"command_topic"}, "select": {"command_topic", "options"},
    "sensor": {"state_topic"}, "binary_sensor": {"state_topic"}, "image": set(),
    "camera": {"topic"}, "button": {"command_topic"},
}
SUPPORTED_PLATFORMS = {
    "alarm_control_panel", "binary_sensor", "button", "camera", "climate", "cover",
    "device_automation", "device_tracker", "event", "fan", "humidifier", "image",
    "lawn_mower", "light", "lock", "notify", "number", "scene", "siren", "select", "sensor",
    "switch", "tag", "text", "update", "vacuum", "valve", "water_heater",
}
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name",
               "hw_version", "serial_number", "sw_version", "via_device", "suggested_area",
               "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
TOP_KEYS = {"device", "origin", "components", "state_topic", "command_topic", "qos",
            "encoding", "availability", "availability_mode", "availability_template",
            "availability_topic", "payload_available", "payload_not_available"}
# Device classes and state classes the payload may use (subsets of Home Assistant's).
DEVICE_CLASSES = {"binary_sensor": {"motion", "occupancy", "problem", "connectivity"},
                  "sensor": set(), "button": {"restart", "identify", "update"}}
STATE_CLASSES = {"measurement", "total", "total_increasing"}


@dataclass(frozen=True)
class Generation:
    name: str            # the first release of the generation
    entity_id_keys: tuple[str, ...]  # keys read for the entity id, first wins
    extra_keys: frozenset[str]       # common keys this generation adds
    config_category: bool            # may sensors/binary sensors be entity_category config

    def accepted(self, platform: str) -> set[str]:
        return _COMMON | _PLATFORM[platform] | set(self.extra_keys)


GENERATIONS = (
    Generation("2024.11", ("object_id",), frozenset({"object_id"}), True),
    Generation("2025.10", ("default_entity_id", "object_id"),
               frozenset({"object_id", "default_entity_id"}), True),
    Generation("2026.4", ("default_entity_id",), frozenset({"default_entity_id"}), True),
    # As read in 2026.11.0 (first release with these not pinned down): two more common
    # keys, and sensors / binary sensors may no longer be entity_category "config".
    Generation("2026.11", ("default_entity_id",),
               frozenset({"default_entity_id", "message_expiry_interval",
                          "visible_by_default"}), False),
)
ENTITY_ID_KEYS = {"object_id", "default_entity_id"}


def slugify(text: str) -> str:
    """Home Assistant's slugify for ASCII-able text: runs of other characters become `_`."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "unknown"


_TOPIC_PUB = re.compile(r"^[^#+\x00]+$")


def _topic_ok(topic: object, publish: bool) -> bool:
    if not isinstance(topic, str) or not topic or len(topic.encode()) > 65535:
        return False
    return bool(_TOPIC_PUB.match(topic)) if publish else "\x00" not in topic


def problems(payload: dict, gen: Generation) -> list[str]:
    """Why Home Assistant of generation `gen` would refuse or silently ignore parts of a
    device discovery payload; [] when every key is understood. The key naming the entity
    id of another generation is allowed (it is dropped there by design)."""
    out: list[str] = []
    for key in set(payload) - TOP_KEYS:
        out.append(f"top level: unknown key {key!r} refuses the whole message")
    for key in ("device", "origin", "components"):
        if key not in payload:
            out.append(f"top level: {key!r} is required")
    device = payload.get("device", {})
    out += [f"device: unknown key {k!r}" for k in set(device) - DEVICE_KEYS]
    if not device.get("identifiers") and not device.get("connections"):
        out.append("device: needs identifiers or connections")
    url = device.get("configuration_url")
    if url is not None and not re.match(r"^(https?|homeassistant)://", url):
        out.append(f"device: configuration_url {url!r} is not a URL")
    origin = payload.get("origin", {})
    out += [f"origin: unknown key {k!r}" for k in set(origin) - ORIGIN_KEYS]
    if not origin.get("name"):
        out.append("origin: name is required")
    for cid, comp in payload.get("components", {}).items():
        where = f"component {cid!r}"
        if not re.fullmatch(r"[A-Za-z0-9_-]+", cid):
            out.append(f"{where}: id must not hold spaces or odd characters")
        platform = comp.get("p")
        if platform not in SUPPORTED_PLATFORMS:
            out.append(f"{where}: platform {platform!r} not supported")
            continue
        if set(comp) == {"p"}:
            continue  # a removal
        if platform not in _PLATFORM:
            out.append(f"{where}: platform {platform!r} not modelled here")
            continue
        if not comp.get("unique_id"):
            out.append(f"{where}: unique_id is required in device discovery")
        dropped = set(comp) - gen.accepted(platform) - {"p"} - ENTITY_ID_KEYS
        out += [f"{where}: {k!r} is dropped silently" for k in sorted(dropped)]
        for k in _REQUIRED[platform] - set(comp):
            out.append(f"{where}: {k!r} is required")
        if platform == "image" and ("image_topic" in comp) == ("url_topic" in comp):
            out.append(f"{where}: exactly one of image_topic and url_topic")
        for k, v in comp.items():
            if k.endswith("_topic") or k == "topic":
                if not _topic_ok(v, publish=k == "command_topic"):
                    out.append(f"{where}: {k} {v!r} is not a valid topic")
            if k.endswith("_template") and not isinstance(v, str):
                out.append(f"{where}: {k} must be a template string")
        if "icon" in comp and not re.fullmatch(r"[a-z0-9-]+:[a-z0-9-]+", comp["icon"]):
            out.append(f"{where}: icon {comp['icon']!r} is not prefix:name")
        cat = comp.get("entity_category")
        allowed_cats = {"diagnostic"} if (platform in ("sensor", "binary_sensor")
                                          and not gen.config_category) else {"config",
                                                                             "diagnostic"}
        if cat is not None and cat not in allowed_cats:
            out.append(f"{where}: entity_category {cat!r}")
        dc = comp.get("device_class")
        if dc is not None and dc not in DEVICE_CLASSES.get(platform, set()):
            out.append(f"{where}: device_class {dc!r} not one this helper knows for {platform}")
        if comp.get("state_class") not in (None, *STATE_CLASSES):
            out.append(f"{where}: state_class {comp['state_class']!r}")
        if platform == "select" and not (isinstance(comp.get("options"), list)
                                         and comp["options"]):
            out.append(f"{where}: options must be a non-empty list")
        dei = comp.get("default_entity_id")
        if dei is not None and "default_entity_id" in gen.entity_id_keys:
            domain, _, obj = dei.partition(".")
            if domain != platform or not obj:
                out.append(f"{where}: default_entity_id {dei!r} is not {platform}.<id>")
    return out


def entity_ids(payload: dict, gen: Generation, taken: set[str] | None = None) -> dict[str, str]:
    """{component key: entity id} as Home Assistant of generation `gen` registers them on
    first discovery, taking ids in `taken` (and each other's) into account."""
    taken = set() if taken is None else set(taken)
    device_name = payload["device"].get("name") or ""
    out: dict[str, str] = {}
    for cid, comp in payload["components"].items():
        if set(comp) == {"p"}:
            continue
        platform = comp["p"]
        object_id = None
        for key in gen.entity_id_keys:
            if comp.get(key):
                object_id = comp[key].partition(".")[2] if key == "default_entity_id" \
                    else comp[key]
                break
        if object_id is None:
            object_id = f"{device_name} {comp.get('name') or ''}"
        base = f"{platform}.{slugify(object_id)}"
        eid, n = base, 1
        while eid in taken:
            n += 1
            eid = f"{base}_{n}"
        taken.add(eid)
        out[cid] = eid
    return out
