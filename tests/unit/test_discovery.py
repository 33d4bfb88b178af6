"""Unit tests for node.discovery: the Home Assistant device-based discovery document.

The expected document below is written out by hand: it is the contract with Home
Assistant's MQTT device discovery (`<prefix>/device/<object_id>/config`, one message with
`device`, `origin`, shared `availability`/`qos` and a `components` map whose entries carry
their platform in `p`). tests/ha_mqtt_discovery.py holds what each Home Assistant
generation accepts and how it names entities; every payload is checked against all.
"""

from __future__ import annotations

import copy
import json
import re

import jinja2
import pytest

from camnode.node import __version__
from camnode.node.discovery import (device_name, discovery_payload, label_component_ids, labels_of,
                            roi_component_ids, sent_components, slug)
from camnode.node.topics import Topics
from tests import ha_mqtt_discovery as ha

TOPICS = Topics.for_node("camnode", "porch")
ARGS = dict(topics=TOPICS, node_id="porch", name="Porch camera",
            modules=["motion", "passthrough"], rois=["door"],
            config_url="http://cam.local:8080/")

EXPECTED = {
    "device": {
        "identifiers": ["camnode_porch"],
        "name": "Porch camera",
        "manufacturer": "camnode",
        "model": "camnode camera node",
        "sw_version": __version__,
        "configuration_url": "http://cam.local:8080/",
    },
    "origin": {"name": "camnode", "sw_version": __version__},
    "availability": [{"topic": "camnode/porch/availability",
                      "payload_available": "online",
                      "payload_not_available": "offline"}],
    "qos": 1,
    "components": {
        "pipeline": {
            "p": "switch",
            "name": "Pipeline",
            "unique_id": "camnode_porch_pipeline",
            "object_id": "camnode_porch_pipeline",
            "default_entity_id": "switch.camnode_porch_pipeline",
            "command_topic": "camnode/porch/pipeline/set",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ 'ON' if value_json.pipeline == 'running' else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:cctv",
        },
        "module": {
            "p": "select",
            "name": "Module",
            "unique_id": "camnode_porch_module",
            "object_id": "camnode_porch_module",
            "default_entity_id": "select.camnode_porch_module",
            "command_topic": "camnode/porch/module/set",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.module }}",
            "options": ["motion", "passthrough"],
            "icon": "mdi:image-filter-center-focus",
        },
        "problem": {
            "p": "binary_sensor",
            "name": "Problem",
            "unique_id": "camnode_porch_problem",
            "object_id": "camnode_porch_problem",
            "default_entity_id": "binary_sensor.camnode_porch_problem",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ 'ON' if value_json.health is defined"
                              " and not value_json.health.ok else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "problem",
            "json_attributes_topic": "camnode/porch/state",
            "json_attributes_template": "{{ {'problems': value_json.health.problems"
                                        " if value_json.health is defined else []} | tojson }}",
        },
        "last_error": {
            "p": "sensor",
            "name": "Last error",
            "unique_id": "camnode_porch_last_error",
            "object_id": "camnode_porch_last_error",
            "default_entity_id": "sensor.camnode_porch_last_error",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.last_error[:255]"
                              " if value_json.last_error else 'None' }}",
            "entity_category": "diagnostic",
            "icon": "mdi:alert-circle-outline",
        },
        "fps": {
            "p": "sensor",
            "name": "Frame rate",
            "unique_id": "camnode_porch_fps",
            "object_id": "camnode_porch_fps",
            "default_entity_id": "sensor.camnode_porch_fps",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.fps if value_json.pipeline == 'running' else 0 }}",
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "icon": "mdi:speedometer",
        },
        "viewers": {
            "p": "sensor",
            "name": "Viewers",
            "unique_id": "camnode_porch_viewers",
            "object_id": "camnode_porch_viewers",
            "default_entity_id": "sensor.camnode_porch_viewers",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.viewers }}",
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "icon": "mdi:eye",
        },
        "source": {
            "p": "sensor",
            "name": "Source",
            "unique_id": "camnode_porch_source",
            "object_id": "camnode_porch_source",
            "default_entity_id": "sensor.camnode_porch_source",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.source.status }}",
            "entity_category": "diagnostic",
            "icon": "mdi:camera",
        },
        "motion": {
            "p": "binary_sensor",
            "name": "Motion",
            "unique_id": "camnode_porch_motion",
            "object_id": "camnode_porch_motion",
            "default_entity_id": "binary_sensor.camnode_porch_motion",
            "state_topic": "camnode/porch/motion",
            "device_class": "motion",
            "payload_on": "ON",
            "payload_off": "OFF",
        },
        "snapshot": {
            "p": "image",
            "name": "Snapshot",
            "unique_id": "camnode_porch_snapshot",
            "object_id": "camnode_porch_snapshot",
            "default_entity_id": "image.camnode_porch_snapshot",
            "image_topic": "camnode/porch/snapshot/image",
            "content_type": "image/jpeg",
        },
        "camera": {
            "p": "camera",
            "name": "Camera",
            "unique_id": "camnode_porch_camera",
            "object_id": "camnode_porch_camera",
            "default_entity_id": "camera.camnode_porch_camera",
            "topic": "camnode/porch/snapshot",
        },
        "restart": {
            "p": "button",
            "name": "Restart pipeline",
            "unique_id": "camnode_porch_restart",
            "object_id": "camnode_porch_restart",
            "default_entity_id": "button.camnode_porch_restart",
            "command_topic": "camnode/porch/request/pipeline/restart",
            "payload_press": "{}",
            "icon": "mdi:restart",
        },
        "take_snapshot": {
            "p": "button",
            "name": "Take snapshot",
            "unique_id": "camnode_porch_take_snapshot",
            "object_id": "camnode_porch_take_snapshot",
            "default_entity_id": "button.camnode_porch_take_snapshot",
            "command_topic": "camnode/porch/request/snapshot",
            "payload_press": "{}",
            "icon": "mdi:camera-iris",
        },
        "rois": {
            "p": "sensor",
            "name": "Regions of interest",
            "unique_id": "camnode_porch_rois",
            "object_id": "camnode_porch_rois",
            "default_entity_id": "sensor.camnode_porch_rois",
            "state_topic": "camnode/porch/rois",
            "value_template": "{{ value_json.rois | count }}",
            "json_attributes_topic": "camnode/porch/rois",
            "json_attributes_template": "{{ value_json.rois | tojson }}",
            "entity_category": "diagnostic",
            "icon": "mdi:vector-rectangle",
        },
        "roi_door_occupancy": {
            "p": "binary_sensor",
            "name": "door occupancy",
            "unique_id": "camnode_porch_roi_door_occupancy",
            "object_id": "camnode_porch_roi_door_occupancy",
            "default_entity_id": "binary_sensor.camnode_porch_roi_door_occupancy",
            "state_topic": "camnode/porch/roi/door/occupancy",
            "device_class": "occupancy",
            "payload_on": "ON",
            "payload_off": "OFF",
        },
        "roi_door_count": {
            "p": "sensor",
            "name": "door count",
            "unique_id": "camnode_porch_roi_door_count",
            "object_id": "camnode_porch_roi_door_count",
            "default_entity_id": "sensor.camnode_porch_roi_door_count",
            "state_topic": "camnode/porch/roi/door/count",
            "state_class": "measurement",
            "icon": "mdi:counter",
        },
    },
}

# Platforms Home Assistant's MQTT integration supports in device discovery that we use.
HA_PLATFORMS = {"switch", "select", "sensor", "binary_sensor", "image", "camera", "button"}
COMPONENT_ID = re.compile(r"^[a-z0-9_]+$")


def payload(**overrides) -> dict:
    return discovery_payload(**{**ARGS, **overrides})


def entities(doc: dict) -> dict:
    """Components that describe an entity (not platform-only removals)."""
    return {k: v for k, v in doc["components"].items() if set(v) != {"p"}}


# -- the full contract -------------------------------------------------------------------
def test_payload_for_porch_node_matches_the_home_assistant_contract_exactly():
    assert payload() == EXPECTED


def test_payload_component_keys_in_full_contract():
    # A second view of the same contract, so a mismatch names the component that differs.
    doc = payload()
    assert set(doc) == {"device", "origin", "availability", "components", "qos"}
    assert list(doc["components"]) == list(EXPECTED["components"])
    for key, comp in EXPECTED["components"].items():
        assert doc["components"][key] == comp, key


def test_payload_is_what_the_mqtt_bridge_publishes_on_the_device_discovery_topic():
    assert TOPICS.discovery == "homeassistant/device/camnode_porch/config"
    # The device object id in the topic and the device identifier agree.
    assert payload()["device"]["identifiers"] == ["camnode_porch"]


# -- Home Assistant generations: every key understood, documented ids on every release ----
GARDEN = dict(topics=Topics.for_node("camnode", "garden"), node_id="garden", name="camnode",
              modules=["motion", "objects", "passthrough"], rois=["AccessPoint_1", "Driveway"],
              labels=["person"], config_url="http://garden.local:8080/")

# The closing-note table: node "garden" (name left at the default), ROIs AccessPoint_1 and
# Driveway, the object detector tracking "person".
GARDEN_IDS = {
    "switch.camnode_garden_pipeline", "select.camnode_garden_module",
    "binary_sensor.camnode_garden_problem", "sensor.camnode_garden_last_error",
    "sensor.camnode_garden_fps", "sensor.camnode_garden_viewers",
    "sensor.camnode_garden_source", "binary_sensor.camnode_garden_motion",
    "image.camnode_garden_snapshot", "camera.camnode_garden_camera",
    "button.camnode_garden_restart", "button.camnode_garden_take_snapshot",
    "sensor.camnode_garden_rois",
    "binary_sensor.camnode_garden_roi_accesspoint_1_occupancy",
    "sensor.camnode_garden_roi_accesspoint_1_count",
    "binary_sensor.camnode_garden_roi_driveway_occupancy",
    "sensor.camnode_garden_roi_driveway_count",
    "binary_sensor.camnode_garden_roi_accesspoint_1_person_occupancy",
    "sensor.camnode_garden_roi_accesspoint_1_person_count",
    "binary_sensor.camnode_garden_roi_driveway_person_occupancy",
    "sensor.camnode_garden_roi_driveway_person_count",
}


@pytest.mark.parametrize("gen", ha.GENERATIONS, ids=lambda g: g.name)
def test_every_key_is_understood_by_each_home_assistant_generation(gen):
    for doc in (payload(), discovery_payload(**GARDEN),
                payload(rois=["door"], previous={"roi_yard_count": "sensor"})):
        assert ha.problems(doc, gen) == []


@pytest.mark.parametrize("gen", ha.GENERATIONS, ids=lambda g: g.name)
def test_garden_gets_the_documented_readable_ids_on_each_generation(gen):
    ids = ha.entity_ids(discovery_payload(**GARDEN), gen)
    assert set(ids.values()) == GARDEN_IDS
    assert ids[roi_component_ids("AccessPoint_1")[0]] == \
        "binary_sensor.camnode_garden_roi_accesspoint_1_occupancy"  # no hash suffix
    assert ids[label_component_ids("Driveway", "person")[0]] == \
        "binary_sensor.camnode_garden_roi_driveway_person_occupancy"


def test_without_the_id_keys_home_assistant_would_name_entities_after_the_device():
    # What the issue saw on releases before 2025.10 (only default_entity_id was sent):
    # ids from device name + entity name. Both keys together are what fixes it.
    doc = discovery_payload(**GARDEN)
    for comp in doc["components"].values():
        comp.pop("object_id", None)
    old = ha.entity_ids(doc, ha.GENERATIONS[0])
    assert old["pipeline"] == "switch.garden_pipeline"
    assert "switch.camnode_garden_pipeline" not in old.values()


def test_a_validator_that_cannot_fail_is_worthless_so_show_it_failing():
    doc = payload()
    doc["components"]["pipeline"]["stat_topic"] = "x"            # typo: dropped silently
    doc["components"]["fps"]["entity_category"] = "config"       # refused by 2026.11
    doc["device"]["mf"] = "x"                                    # unknown device key
    new = ha.problems(doc, ha.GENERATIONS[-1])
    assert any("'stat_topic' is dropped silently" in p for p in new)
    assert any("entity_category 'config'" in p for p in new)
    assert any("device: unknown key 'mf'" in p for p in new)
    assert not any("entity_category" in p for p in ha.problems(doc, ha.GENERATIONS[0]))


def test_object_id_and_default_entity_id_name_the_same_id():
    for comp in entities(discovery_payload(**GARDEN)).values():
        assert comp["default_entity_id"] == f"{comp['p']}.{comp['object_id']}"


# -- per-key rules -------------------------------------------------------------------------
def test_every_entity_has_a_known_platform_unique_id_and_readable_ids():
    doc = payload(rois=["door", "Front Gate"])
    for key, comp in entities(doc).items():
        assert comp["p"] in HA_PLATFORMS, key
        assert comp["unique_id"] == f"camnode_porch_{key}"
        assert re.fullmatch(r"camnode_porch_[a-z0-9_]+", comp["object_id"]), key
        assert comp["name"], key
    assert doc["components"][roi_component_ids("Front Gate")[0]]["object_id"] == \
        "camnode_porch_roi_front_gate_occupancy"


def test_every_entity_unique_id_and_entity_id_is_unique():
    doc = payload(rois=["door", "yard", "Front-Gate", "a_b"], labels=["person", "car"])
    ids = [c["unique_id"] for c in entities(doc).values()]
    assert len(ids) == len(set(ids)) == 13 + 2 * 4 + 2 * 4 * 2
    dids = [c["default_entity_id"] for c in entities(doc).values()]
    assert len(dids) == len(set(dids))


def test_names_that_slug_alike_get_distinct_ids_and_the_plain_name_keeps_the_plain_id():
    doc = payload(rois=["Door", "door", "DOOR"])
    occ = {roi: doc["components"][roi_component_ids(roi)[0]]["object_id"]
           for roi in ("Door", "door", "DOOR")}
    assert occ["door"] == "camnode_porch_roi_door_occupancy"
    assert re.fullmatch(r"camnode_porch_roi_door_occupancy_[0-9a-f]{6}", occ["Door"])
    assert len(set(occ.values())) == 3
    for gen in ha.GENERATIONS:
        assert len(set(ha.entity_ids(doc, gen).values())) == len(entities(doc))


def test_an_roi_named_like_another_rois_label_pair_gets_its_own_component_and_id():
    doc = payload(rois=["drive", "drive_person"], labels=["person"])
    occ = [c for c in entities(doc).values() if c.get("device_class") == "occupancy"]
    assert len({c["unique_id"] for c in occ}) == 4
    assert len({c["default_entity_id"] for c in occ}) == 4
    topics = {c["state_topic"] for c in occ}
    assert TOPICS.roi_label_occupancy("drive", "person") in topics
    assert TOPICS.occupancy("drive_person") in topics


def test_availability_uses_the_nodes_availability_topic_with_online_offline():
    doc = payload(topics=Topics.for_node("home/cams/", "garden"), node_id="garden")
    assert doc["availability"] == [{"topic": "home/cams/garden/availability",
                                    "payload_available": "online",
                                    "payload_not_available": "offline"}]


def test_topics_follow_base_topic_and_node():
    t = Topics.for_node("home/cams", "garden")
    doc = payload(topics=t, node_id="garden", rois=["yard"], labels=["car"])
    comps = doc["components"]
    assert comps["pipeline"]["command_topic"] == "home/cams/garden/pipeline/set"
    assert comps["module"]["command_topic"] == "home/cams/garden/module/set"
    assert comps["snapshot"]["image_topic"] == "home/cams/garden/snapshot/image"
    assert comps["camera"]["topic"] == "home/cams/garden/snapshot"
    assert comps["roi_yard_occupancy"]["state_topic"] == "home/cams/garden/roi/yard/occupancy"
    assert comps["roi_yard_count"]["state_topic"] == "home/cams/garden/roi/yard/count"
    occ, cnt = label_component_ids("yard", "car")
    assert comps[occ]["state_topic"] == "home/cams/garden/roi/yard/car/occupancy"
    assert comps[cnt]["state_topic"] == "home/cams/garden/roi/yard/car/count"
    assert comps["restart"]["command_topic"] == "home/cams/garden/request/pipeline/restart"
    assert doc["device"]["identifiers"] == ["camnode_garden"]


def test_payload_is_json_serialisable_and_round_trips():
    doc = payload(rois=["door", "yard"], previous={"roi_old_count": "sensor"})
    assert json.loads(json.dumps(doc)) == doc


def test_no_configuration_url_key_when_config_url_is_missing():
    assert "configuration_url" not in payload(config_url=None)["device"]
    assert "configuration_url" not in payload(config_url="")["device"]


def test_select_options_fall_back_to_passthrough_when_no_modules():
    assert payload(modules=[])["components"]["module"]["options"] == ["passthrough"]


def test_select_options_are_a_copy_of_the_modules_list():
    modules = ["motion", "passthrough"]
    doc = payload(modules=modules)
    doc["components"]["module"]["options"].append("x")
    assert modules == ["motion", "passthrough"]


def test_no_rois_gives_no_roi_components():
    comps = payload(rois=[], labels=["person"])["components"]
    assert not [k for k in comps if k.startswith("roi_")]
    assert set(comps) == set(EXPECTED["components"]) - {"roi_door_occupancy", "roi_door_count"}


# -- device name (item 2) ------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("Porch camera", "Porch camera"), ("camnode", "porch"), (None, "porch"), ("", "porch"),
    ("  ", "porch")])
def test_device_is_named_after_the_node_unless_a_name_is_configured(name, expected):
    assert device_name("porch", name) == expected
    assert payload(name=name)["device"]["name"] == expected


def test_two_nodes_left_at_the_default_name_are_two_devices_with_their_own_names():
    a = payload(topics=Topics.for_node("camnode", "porch"), node_id="porch", name="camnode")
    b = payload(topics=Topics.for_node("camnode", "garden"), node_id="garden", name="camnode")
    assert (a["device"]["name"], b["device"]["name"]) == ("porch", "garden")
    gen = ha.GENERATIONS[0]
    assert not set(ha.entity_ids(a, gen).values()) & set(ha.entity_ids(b, gen).values())


# -- problem and last error (item 3) -------------------------------------------------------
def render(template: str, state: dict) -> str:
    """Render a value template the way Home Assistant does for MQTT (Jinja, value_json)."""
    env = jinja2.Environment()
    env.filters["tojson"] = lambda v: json.dumps(v)
    return env.from_string(template).render(value_json=state, value=json.dumps(state))


@pytest.mark.parametrize("state, expected", [
    ({"health": {"ok": True, "problems": []}}, "OFF"),
    ({"health": {"ok": False, "problems": [{"part": "source", "reason": "lost",
                                            "since": 1.0}]}}, "ON"),
    ({}, "OFF"),  # a node without the health report counts as healthy
])
def test_problem_sensor_follows_the_health_report(state, expected):
    comp = payload()["components"]["problem"]
    assert render(comp["value_template"], state) == expected
    attrs = json.loads(render(comp["json_attributes_template"], state))
    assert attrs == {"problems": state.get("health", {}).get("problems", [])}


@pytest.mark.parametrize("error, expected", [
    (None, "None"), ("", "None"), ("module 'x' refused: import failed", None),
    ("e" * 400, "e" * 255)])
def test_last_error_sensor_shows_the_error_within_home_assistants_state_limit(error, expected):
    comp = payload()["components"]["last_error"]
    out = render(comp["value_template"], {"last_error": error})
    assert out == (error if expected is None else expected)


@pytest.mark.parametrize("state, expected", [
    ({"pipeline": "running", "fps": 29.5}, "29.5"), ({"pipeline": "stopped", "fps": 30.0}, "0")])
def test_frame_rate_reads_zero_as_soon_as_the_pipeline_stops(state, expected):
    assert render(payload()["components"]["fps"]["value_template"], state) == expected


# -- labels (item 8) -----------------------------------------------------------------------
def test_labels_of_reads_module_status_labels():
    assert labels_of({"module_status": {"labels": ["person", "car", "person", 3, " "]}}) == \
        ["car", "person"]
    assert labels_of({"module_status": None}) == []
    assert labels_of({}) == []
    assert labels_of({"module_status": {"labels": "person"}}) == []


def test_each_roi_and_label_gets_an_occupancy_and_a_count_entity_with_readable_names():
    comps = discovery_payload(**GARDEN)["components"]
    occ, cnt = label_component_ids("Driveway", "person")
    assert comps[occ]["name"] == "Driveway person"
    assert comps[occ]["device_class"] == "occupancy"
    assert comps[cnt]["name"] == "Driveway person count"
    assert comps[cnt]["state_class"] == "measurement"


# -- removals: whatever was sent and is gone now -------------------------------------------
def test_removed_roi_is_sent_as_platform_only_components():
    before = sent_components(payload(rois=["door", "yard"]))
    comps = payload(rois=["door"], previous=before)["components"]
    assert comps["roi_yard_occupancy"] == {"p": "binary_sensor"}
    assert comps["roi_yard_count"] == {"p": "sensor"}
    assert comps["roi_door_occupancy"] == EXPECTED["components"]["roi_door_occupancy"]
    assert comps["roi_door_count"] == EXPECTED["components"]["roi_door_count"]


def test_labels_that_are_gone_are_removed_and_present_ones_kept():
    before = sent_components(payload(labels=["person", "car"]))
    comps = payload(labels=["person"], previous=before)["components"]
    occ, cnt = label_component_ids("door", "car")
    assert comps[occ] == {"p": "binary_sensor"} and comps[cnt] == {"p": "sensor"}
    assert set(comps[label_component_ids("door", "person")[0]]) != {"p"}


def test_nothing_removed_when_nothing_is_gone():
    before = sent_components(payload())
    assert payload(previous=before) == EXPECTED


@pytest.mark.parametrize("roi, prefix", [
    ("door", "roi_door"),
    ("Front Door", "roi_front_door_"),
    ("front-door", "roi_front_door_"),
    ("  Gate #2!  ", "roi_gate_2_"),
    ("Zone_A", "roi_zone_a_"),
    ("Tür", "roi_t_r_"),
    ("!!!", "roi_x_"),
])
def test_roi_names_with_odd_characters_give_valid_component_ids(roi, prefix):
    occ, cnt = roi_component_ids(roi)
    assert occ.startswith(prefix) and occ.endswith("_occupancy")
    assert cnt.startswith(prefix) and cnt.endswith("_count")
    if roi == "door":  # clean names stay readable, without a hash
        assert (occ, cnt) == ("roi_door_occupancy", "roi_door_count")
    comps = payload(rois=[roi])["components"]
    assert occ in comps and cnt in comps
    for key in comps:
        assert COMPONENT_ID.fullmatch(key), key
    # The entity keeps the ROI's real name and topics; only ids are slugged.
    assert comps[occ]["name"] == f"{roi} occupancy"
    assert comps[occ]["state_topic"] == TOPICS.occupancy(roi)
    assert comps[occ]["unique_id"] == f"camnode_porch_{occ}"
    assert re.fullmatch(r"camnode_porch_roi_[a-z0-9_]+_occupancy", comps[occ]["object_id"])


@pytest.mark.parametrize("text, expected", [
    ("AccessPoint_1", "accesspoint_1"), ("Front  Door", "front_door"), ("Tür", "tur"),
    ("a__b", "a_b"), ("!!!", "x")])
def test_slug_makes_the_ids_home_assistant_itself_would_make(text, expected):
    assert slug(text) == expected
    assert ha.slugify(text) in (expected, "unknown")


def test_node_id_is_hashed_in_unique_ids_and_readable_in_entity_ids():
    doc = payload(topics=Topics.for_node("camnode", "Porch-1"), node_id="Porch-1")
    ident = doc["device"]["identifiers"][0]
    assert re.fullmatch(r"camnode_porch_1_[0-9a-f]{6}", ident)
    assert doc["components"]["pipeline"]["unique_id"] == f"{ident}_pipeline"
    assert doc["components"]["pipeline"]["default_entity_id"] == "switch.camnode_porch_1_pipeline"


def test_distinct_roi_names_get_distinct_components():
    comps = payload(rois=["front-door", "front_door"])["components"]
    topics = {c["state_topic"] for c in comps.values()
              if c.get("device_class") == "occupancy"}
    assert topics == {TOPICS.occupancy("front-door"), TOPICS.occupancy("front_door")}


def test_distinct_node_ids_get_distinct_device_identifiers():
    a = payload(topics=Topics.for_node("camnode", "porch-1"), node_id="porch-1")
    b = payload(topics=Topics.for_node("camnode", "porch_1"), node_id="porch_1")
    assert a["device"]["identifiers"] != b["device"]["identifiers"]


# -- purity ------------------------------------------------------------------------------
def test_function_is_pure_same_inputs_equal_output_and_inputs_not_mutated():
    modules, rois, labels = ["motion", "passthrough"], ["yard", "door"], ["person"]
    previous = {"roi_old_count": "sensor"}
    before = copy.deepcopy((modules, rois, labels, previous))
    t = Topics.for_node("camnode", "porch")
    a = discovery_payload(t, "porch", "Porch camera", modules, rois, labels, previous,
                          "http://cam.local:8080/")
    b = discovery_payload(t, "porch", "Porch camera", modules, rois, labels, previous,
                          "http://cam.local:8080/")
    assert a == b
    assert a is not b
    assert (modules, rois, labels, previous) == before
    assert t == Topics.for_node("camnode", "porch")


def test_returned_documents_share_no_mutable_state():
    a = payload()
    a["components"]["pipeline"]["name"] = "changed"
    a["availability"][0]["topic"] = "changed"
    a["device"]["identifiers"].append("changed")
    assert payload() == EXPECTED
