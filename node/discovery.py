"""Home Assistant MQTT device discovery, built by pure functions (no I/O).

One retained message on `<prefix>/device/camnode_<node_id>/config` describes the whole
device: pipeline switch, module select, diagnostics, motion, per-ROI occupancy and
count, snapshot image, camera, buttons and the ROI list. The MQTT bridge publishes it
on connect, when Home Assistant says `online`, and when ROIs or modules change; an ROI
that was removed is sent as a component with only its platform, which makes Home
Assistant delete its entities.
"""

from __future__ import annotations

import hashlib
import re

from node import __version__
from node.topics import Topics

def _slug(text: str) -> str:
    """An id Home Assistant accepts ([a-z0-9_]) that stays distinct for distinct names:
    "door" stays "door"; "Door" and "front-door" get a short hash of the original, so
    they never collide with "door" or "front_door"."""
    slug = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "x"
    if slug != text:
        slug += "_" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return slug


def roi_component_ids(roi: str) -> tuple[str, str]:
    return f"roi_{_slug(roi)}_occupancy", f"roi_{_slug(roi)}_count"


def discovery_payload(topics: Topics, node_id: str, name: str, modules: list[str],
                      rois: list[str], removed_rois: list[str] = (),
                      config_url: str | None = None) -> dict:
    """The device discovery document for Home Assistant (see module docstring)."""
    uid = f"camnode_{_slug(node_id)}"
    state_tpl = "{{ value_json.%s }}"

    def entity(key: str, platform: str, label: str, **opts) -> tuple[str, dict]:
        return key, {"p": platform, "name": label, "unique_id": f"{uid}_{key}",
                     "default_entity_id": f"{platform}.{uid}_{key}", **opts}

    comps = dict([
        entity("pipeline", "switch", "Pipeline", command_topic=topics.pipeline_set,
               state_topic=topics.state,
               value_template="{{ 'ON' if value_json.pipeline == 'running' else 'OFF' }}",
               payload_on="ON", payload_off="OFF", icon="mdi:cctv"),
        entity("module", "select", "Module", command_topic=topics.module_set,
               state_topic=topics.state, value_template=state_tpl % "module",
               options=list(modules) or ["passthrough"], icon="mdi:image-filter-center-focus"),
        entity("fps", "sensor", "Frame rate", state_topic=topics.state,
               value_template=state_tpl % "fps", unit_of_measurement="fps",
               state_class="measurement", entity_category="diagnostic", icon="mdi:speedometer"),
        entity("viewers", "sensor", "Viewers", state_topic=topics.state,
               value_template=state_tpl % "viewers", state_class="measurement",
               entity_category="diagnostic", icon="mdi:eye"),
        entity("source", "sensor", "Source", state_topic=topics.state,
               value_template=state_tpl % "source.status", entity_category="diagnostic",
               icon="mdi:camera"),
        entity("motion", "binary_sensor", "Motion", state_topic=topics.motion,
               device_class="motion", payload_on="ON", payload_off="OFF"),
        entity("snapshot", "image", "Snapshot", image_topic=topics.snapshot,
               content_type="image/jpeg"),
        entity("camera", "camera", "Camera", topic=topics.snapshot),
        entity("restart", "button", "Restart pipeline",
               command_topic=topics.request("pipeline/restart"), payload_press="{}",
               icon="mdi:restart"),
        entity("take_snapshot", "button", "Take snapshot",
               command_topic=topics.request("snapshot"), payload_press="{}",
               icon="mdi:camera-iris"),
        entity("rois", "sensor", "Regions of interest", state_topic=topics.rois,
               value_template="{{ value_json.rois | count }}", json_attributes_topic=topics.rois,
               json_attributes_template="{{ value_json.rois | tojson }}",
               entity_category="diagnostic", icon="mdi:vector-rectangle"),
    ])
    for roi in rois:
        occ, cnt = roi_component_ids(roi)
        comps.update([
            entity(occ, "binary_sensor", f"{roi} occupancy", state_topic=topics.occupancy(roi),
                   device_class="occupancy", payload_on="ON", payload_off="OFF"),
            entity(cnt, "sensor", f"{roi} count", state_topic=topics.count(roi),
                   state_class="measurement", icon="mdi:counter"),
        ])
    for roi in removed_rois:
        if roi in rois or roi_component_ids(roi)[0] in comps:
            continue
        occ, cnt = roi_component_ids(roi)
        comps[occ] = {"p": "binary_sensor"}  # platform only: Home Assistant removes it
        comps[cnt] = {"p": "sensor"}
    device = {"identifiers": [uid], "name": name, "manufacturer": "camnode",
              "model": "camnode camera node", "sw_version": __version__}
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
