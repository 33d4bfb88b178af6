"""/metrics as Prometheus reads it, with counters that move as frames flow."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import MjpegReader, post_command, request, wait_for


def _metrics(url: str) -> dict:
    status, headers, body = request(url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items())
                                   if k != "node_id")
            out[key] = s.value
    return out


def test_metrics_parse_and_counters_move_as_frames_flow(run_node):
    node = run_node()
    reader = MjpegReader(node.url + "/stream.mjpg")
    reader.read_part()
    first = _metrics(node.url)
    for name in ("camnode_up", "camnode_frames_captured_total", "camnode_frames_published_total",
                 "camnode_viewers", "camnode_mqtt_connected", "camnode_source_reconnects_total",
                 "camnode_processing_seconds_count", "camnode_encode_seconds_count",
                 "camnode_web_stream_bytes_total", "camnode_frames_dropped_total|reason=module"):
        assert name in first, name
    assert first["camnode_up"] == 1 and first["camnode_mqtt_connected"] == 0
    for _ in range(10):
        reader.read_part()
    post_command(node.url, "module/set", {"name": "nope"})
    later = wait_for(lambda: (m := _metrics(node.url))["camnode_frames_captured_total"]
                     > first["camnode_frames_captured_total"] + 10 and m, what="counters")
    assert later["camnode_processing_seconds_count"] > first["camnode_processing_seconds_count"]
    assert later["camnode_web_stream_bytes_total"] > first["camnode_web_stream_bytes_total"]
    assert later["camnode_processing_seconds_bucket|le=+Inf"] == \
        later["camnode_processing_seconds_count"]
    wait_for(lambda: _metrics(node.url).get("camnode_commands_total|result=error", 0) >= 1,
             what="refused command counted")
    wait_for(lambda: _metrics(node.url)["camnode_viewers"] == 1, what="one viewer")
    reader.close()
