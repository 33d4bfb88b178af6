"""Home Assistant MQTT device discovery, built by pure functions (no I/O).

One retained message on `<prefix>/device/camnode_<node_id>/config` describes the whole
device: pipeline switch, module select, problem and last-error entities, diagnostics,
motion, per-ROI (and per ROI x label) occupancy and count, snapshot image, camera,
buttons and the ROI list. The MQTT bridge publishes it on connect, when Home Assistant
says `online`, and when ROIs, modules or the object detector's labels change; a
component that was sent before and is gone now is sent with only its platform, which
makes Home Assistant delete its entity.

Entity ids. Home Assistant takes an entity's id from the discovery message by a key that
changed over time (read in homeassistant/components/mqtt/entity.py of each release):

- 2024.11 (device discovery arrives) to 2025.9: `object_id`; an unknown key such as
  `default_entity_id` is dropped silently, and the id would come from device + entity name.
- 2025.10 to 2026.3: `default_entity_id` (`<domain>.<object id>`) wins over `object_id`;
  with both present nothing is logged.
- 2026.4 and later: `object_id` is gone from the schema (dropped silently).

So every entity carries both, naming the same id: `<domain>.camnode_<node>_<what>`.
Ids are readable slugs of the names (`AccessPoint_1` -> `accesspoint_1`); the rare
names whose slugs collide get a short hash of the component key in their id. Unique ids
and component keys are not ids users type: they keep the exact-name hash of earlier
releases, so entities already registered in Home Assistant stay the same entities.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping

from camnode.node import __version__
from camnode.node.topics import Topics

# The configuration's default `name`: a device called that is named after its node id.
DEFAULT_NAME = "camnode"


def slug(text: str) -> str:
    """A readable id part, as Home Assistant's slugify makes them: accents dropped, lower
    case, every run of other characters one `_` (`"AccessPoint_1"` -> `accesspoint_1`)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_") or "x"


def _key(text: str) -> str:
    """A component-key part that stays distinct for distinct names: "door" stays "door";
    "Door" and "front-door" get a short hash of the original, so they never collide with
    "door" or "front_door". (Unchanged since the first release: unique ids depend on it.)"""
    part = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "x"
    if part != text:
        part += "_" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return part


def roi_component_ids(roi: str) -> tuple[str, str]:
    """Component keys of an ROI's occupancy binary sensor and count sensor."""
    return f"roi_{_key(roi)}_occupancy", f"roi_{_key(roi)}_count"


def label_component_ids(roi: str, label: str) -> tuple[str, str]:
    """Component keys of one ROI x label pair. `-` never occurs in `_key`, so these never
    equal an ROI's own keys, whatever the names."""
    return f"roi_{_key(roi)}-{_key(label)}_occupancy", f"roi_{_key(roi)}-{_key(label)}_count"


def device_name(node_id: str, name: str | None) -> str:
    """The device's name in Home Assistant: the configured name, or the node id when the
    name was left at the default (two cameras must not both be called "camnode")."""
    return name if name and name.strip() and name != DEFAULT_NAME else node_id


def labels_of(state: Mapping) -> list[str]:
    """The labels the running module tracks (`module_status.labels`), sorted; [] if none."""
    status = state.get("module_status")
    labels = status.get("labels") if isinstance(status, Mapping) else None
    if not isinstance(labels, (list, tuple)):
        return []
    return sorted({str(x) for x in labels if isinstance(x, str) and x.strip()})


def sent_components(payload: Mapping) -> dict[str, str]:
    """{component key: platform} of the entities a payload describes (not removals);
    the bridge keeps it to remove what a later payload no longer has."""
    return {k: c["p"] for k, c in payload["components"].items() if set(c) != {"p"}}


def discovery_payload(topics: Topics, node_id: str, name: str | None, modules: list[str],
                      rois: list[str], labels: Iterable[str] = (),
                      previous: Mapping[str, str] | None = None,
                      config_url: str | None = None) -> dict:
    """The device discovery document for Home Assistant (see module docstring).

    `previous`: {component key: platform} sent before (`sent_components`); keys missing
    now are sent platform-only, which removes their entities."""
    uid = f"camnode_{_key(node_id)}"
    prefix = f"camnode_{slug(node_id)}"
    state_tpl = "{{ value_json.%s }}"
    taken: set[str] = set()

    def entity(key: str, platform: str, label: str, readable: str, **opts) -> tuple[str, dict]:
        object_id = f"{prefix}_{readable}"
        if f"{platform}.{object_id}" in taken:  # two names, one slug: keep both apart
            object_id += "_" + hashlib.sha1(key.encode()).hexdigest()[:6]
        taken.add(f"{platform}.{object_id}")
        return key, {"p": platform, "name": label, "unique_id": f"{uid}_{key}",
                     "object_id": object_id, "default_entity_id": f"{platform}.{object_id}",
                     **opts}

    def simple(key: str, platform: str, label: str, **opts) -> tuple[str, dict]:
        return entity(key, platform, label, key, **opts)

    comps = dict([
        simple("pipeline", "switch", "Pipeline", command_topic=topics.pipeline_set,
               state_topic=topics.state,
               value_template="{{ 'ON' if value_json.pipeline == 'running' else 'OFF' }}",
               payload_on="ON", payload_off="OFF", icon="mdi:cctv"),
        simple("module", "select", "Module", command_topic=topics.module_set,
               state_topic=topics.state, value_template=state_tpl % "module",
               options=list(modules) or ["passthrough"], icon="mdi:image-filter-center-focus"),
        simple("problem", "binary_sensor", "Problem", state_topic=topics.state,
               value_template="{{ 'ON' if value_json.health is defined"
                              " and not value_json.health.ok else 'OFF' }}",
               payload_on="ON", payload_off="OFF", device_class="problem",
               json_attributes_topic=topics.state,
               json_attributes_template="{{ {'problems': value_json.health.problems"
                                        " if value_json.health is defined else []} | tojson }}"),
        simple("last_error", "sensor", "Last error", state_topic=topics.state,
               # 255 characters is the most a state may hold; "None" makes it unknown.
               value_template="{{ value_json.last_error[:255]"
                              " if value_json.last_error else 'None' }}",
               entity_category="diagnostic", icon="mdi:alert-circle-outline"),
        simple("fps", "sensor", "Frame rate", state_topic=topics.state,
               value_template="{{ value_json.fps if value_json.pipeline == 'running'"
                              " else 0 }}",
               unit_of_measurement="fps", state_class="measurement",
               entity_category="diagnostic", icon="mdi:speedometer"),
        simple("viewers", "sensor", "Viewers", state_topic=topics.state,
               value_template=state_tpl % "viewers", state_class="measurement",
               entity_category="diagnostic", icon="mdi:eye"),
        simple("source", "sensor", "Source", state_topic=topics.state,
               value_template=state_tpl % "source.status", entity_category="diagnostic",
               icon="mdi:camera"),
        simple("motion", "binary_sensor", "Motion", state_topic=topics.motion,
               device_class="motion", payload_on="ON", payload_off="OFF"),
        simple("snapshot", "image", "Snapshot", image_topic=topics.snapshot_image,
               content_type="image/jpeg"),
        simple("camera", "camera", "Camera", topic=topics.snapshot),
        simple("restart", "button", "Restart pipeline",
               command_topic=topics.request("pipeline/restart"), payload_press="{}",
               icon="mdi:restart"),
        simple("take_snapshot", "button", "Take snapshot",
               command_topic=topics.request("snapshot"), payload_press="{}",
               icon="mdi:camera-iris"),
        simple("rois", "sensor", "Regions of interest", state_topic=topics.rois,
               value_template="{{ value_json.rois | count }}", json_attributes_topic=topics.rois,
               json_attributes_template="{{ value_json.rois | tojson }}",
               entity_category="diagnostic", icon="mdi:vector-rectangle"),
    ])
    labels = sorted(set(labels))
    # Names that are their own slug claim the plain ids first ("door" before "Door").
    rois = sorted(rois, key=lambda r: (slug(r) != r, r))
    for roi in rois:
        occ, cnt = roi_component_ids(roi)
        comps.update([
            entity(occ, "binary_sensor", f"{roi} occupancy", f"roi_{slug(roi)}_occupancy",
                   state_topic=topics.occupancy(roi), device_class="occupancy",
                   payload_on="ON", payload_off="OFF"),
            entity(cnt, "sensor", f"{roi} count", f"roi_{slug(roi)}_count",
                   state_topic=topics.count(roi), state_class="measurement",
                   icon="mdi:counter"),
        ])
    for roi in rois:
        for label in labels:
            occ, cnt = label_component_ids(roi, label)
            what = f"roi_{slug(roi)}_{slug(label)}"
            comps.update([
                entity(occ, "binary_sensor", f"{roi} {label}", f"{what}_occupancy",
                       state_topic=topics.roi_label_occupancy(roi, label),
                       device_class="occupancy", payload_on="ON", payload_off="OFF"),
                entity(cnt, "sensor", f"{roi} {label} count", f"{what}_count",
                       state_topic=topics.roi_label_count(roi, label),
                       state_class="measurement", icon="mdi:counter"),
            ])
    for key, platform in sorted((previous or {}).items()):
        if key not in comps:
            comps[key] = {"p": platform}  # platform only: Home Assistant removes it
    device = {"identifiers": [uid], "name": device_name(node_id, name),
              "manufacturer": "camnode", "model": "camnode camera node",
              "sw_version": __version__}
    if config_url:
        device["configuration_url"] = config_url
    return {
        "device": device,
        "origin": {"name": "camnode", "sw_version": __version__},
        "availability": [{"topic": topics.availability, "payload_available": "online",
                          "payload_not_available": "offline"}],
        "components": comps,
        "qos": 1,
    }
