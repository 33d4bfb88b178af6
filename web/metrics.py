"""Prometheus text exposition of the node's state, rendered by a web worker on /metrics.

The node's state (from the wire) carries a `metrics` section of plain numbers; this adds
the worker's own counters. Pure functions, no I/O, nothing from the node but its state.
"""

from __future__ import annotations


def _esc(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self, labels: dict[str, str]):
        self.lines: list[str] = []
        self.base = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())

    def _labels(self, extra: dict | None = None) -> str:
        parts = [self.base] if self.base else []
        parts += [f'{k}="{_esc(v)}"' for k, v in (extra or {}).items()]
        return "{" + ",".join(parts) + "}" if parts else ""

    def metric(self, name: str, kind: str, help_text: str, samples) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for extra, value in samples:
            if value is None:
                continue
            suffix = "_total" if kind == "counter" else ""
            self.lines.append(f"{name}{suffix}{self._labels(extra)} {float(value):g}")

    def histogram(self, name: str, help_text: str, snap: dict | None) -> None:
        if not snap:
            return
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for bound, count in snap["buckets"]:
            self.lines.append(f"{name}_bucket{self._labels({'le': f'{bound:g}'})} {count}")
        self.lines.append(f"{name}_bucket{self._labels({'le': '+Inf'})} {snap['count']}")
        self.lines.append(f"{name}_sum{self._labels()} {snap['sum']:.6f}")
        self.lines.append(f"{name}_count{self._labels()} {snap['count']}")


def render(state: dict, worker: dict, reachable: bool) -> str:
    """Prometheus text for a node `state` (as published) and this worker's counters."""
    w = _Writer({"node_id": state.get("node_id", "unknown")})
    w.metric("camnode_up", "gauge", "1 while the web worker hears from the node",
             [({}, 1 if reachable else 0)])
    w.metric("camnode_web_viewers", "gauge", "Stream viewers of this web worker",
             [({}, worker["viewers"])])
    w.metric("camnode_web_stream_bytes", "counter", "Stream bytes sent by this web worker",
             [({}, worker["bytes_sent"])])
    w.metric("camnode_web_stream_clients", "counter", "Stream clients served by this worker",
             [({}, worker["clients_served"])])
    if reachable:
        frames = state.get("frames", {})
        m = state.get("metrics", {})
        w.metric("camnode_pipeline_running", "gauge", "1 while the pipeline runs",
                 [({}, 1 if state.get("pipeline") == "running" else 0)])
        w.metric("camnode_fps", "gauge", "Frames per second published",
                 [({}, state.get("fps"))])
        w.metric("camnode_viewers", "gauge", "Stream viewers over all web workers",
                 [({}, state.get("viewers"))])
        w.metric("camnode_stream_bytes", "counter", "Stream bytes sent by all web workers",
                 [({}, state.get("bytes_sent"))])
        w.metric("camnode_frames_captured", "counter", "Frames read from the source",
                 [({}, frames.get("captured"))])
        w.metric("camnode_frames_published", "counter", "Frames encoded and published",
                 [({}, frames.get("published"))])
        w.metric("camnode_frames_dropped", "counter", "Frames not published, by reason",
                 [({"reason": "pipeline_busy"}, frames.get("skipped")),
                  ({"reason": "module"}, frames.get("dropped_by_module"))])
        enc = state.get("encoding") or {}
        w.metric("camnode_frames_encoded", "counter",
                 "JPEG encodes, by why (a frame can count for several reasons)",
                 [({"reason": k}, v) for k, v in (enc.get("encoded_for") or {}).items()])
        w.metric("camnode_frames_not_encoded", "counter",
                 "Frames processed but not encoded: nobody needed a picture",
                 [({}, enc.get("not_encoded"))])
        w.metric("camnode_frames_relayed", "counter",
                 "Camera JPEGs published as they came (no decode, no encode)",
                 [({}, enc.get("relayed"))])
        w.metric("camnode_variants", "gauge", "Stream variants encoded now",
                 [({}, len((enc.get("variants") or {}).get("active") or {}))])
        w.metric("camnode_module_errors", "counter", "Exceptions raised by the module",
                 [({}, state.get("module_errors"))])
        w.metric("camnode_source_reconnects", "counter", "Attempts to reopen the source",
                 [({}, (state.get("source") or {}).get("reconnects"))])
        w.metric("camnode_mqtt_connected", "gauge", "1 while connected to the MQTT broker",
                 [({}, 1 if (state.get("mqtt") or {}).get("connected") else 0)])
        w.metric("camnode_commands", "counter", "Commands answered, by result",
                 [({"result": k}, v) for k, v in (state.get("commands") or {}).items()])
        w.metric("camnode_events", "counter", "Detection events sent",
                 [({}, m.get("events"))])
        w.histogram("camnode_processing_seconds", "Time in the module per frame",
                    m.get("processing_seconds"))
        w.histogram("camnode_encode_seconds", "Time to stamp and JPEG-encode a frame",
                    m.get("encode_seconds"))
    return "\n".join(w.lines) + "\n"
