"""Every MQTT topic camnode uses, built in one place (base topic `camnode/<node_id>`)."""

from __future__ import annotations

from dataclasses import dataclass

# Plain-payload command topics, for Home Assistant switch/select and simple flows.
PLAIN_COMMANDS = {"pipeline/set", "module/set"}


@dataclass(frozen=True)
class Topics:
    """Topic names of one node. `base` is `<base_topic>/<node_id>`."""

    base: str
    discovery_prefix: str = "homeassistant"
    node_id: str = ""

    @classmethod
    def for_node(cls, base_topic: str, node_id: str,
                 discovery_prefix: str = "homeassistant") -> "Topics":
        return cls(f"{base_topic.rstrip('/')}/{node_id}", discovery_prefix, node_id)

    def _t(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    @property
    def availability(self) -> str:
        return self._t("availability")

    @property
    def state(self) -> str:
        return self._t("state")

    @property
    def rois(self) -> str:
        return self._t("rois")

    @property
    def info(self) -> str:
        return self._t("info")

    @property
    def stats(self) -> str:
        return self._t("stats")

    @property
    def events(self) -> str:
        return self._t("events")

    @property
    def motion(self) -> str:
        return self._t("motion")

    @property
    def snapshot(self) -> str:
        return self._t("snapshot")

    @property
    def pipeline_set(self) -> str:
        return self._t("pipeline/set")

    @property
    def module_set(self) -> str:
        return self._t("module/set")

    @property
    def request_filter(self) -> str:
        return self._t("request/#")

    def request(self, command: str) -> str:
        return self._t(f"request/{command}")

    def response(self, command: str) -> str:
        return self._t(f"response/{command}")

    def occupancy(self, roi: str) -> str:
        return self._t(f"roi/{roi}/occupancy")

    def count(self, roi: str) -> str:
        return self._t(f"roi/{roi}/count")

    def roi_label_occupancy(self, roi: str, label: str) -> str:
        """`ON`/`OFF` while an object of `label` is in `roi` (retained)."""
        return self._t(f"roi/{roi}/{label}/occupancy")

    def roi_label_count(self, roi: str, label: str) -> str:
        """How many objects of `label` are in `roi` now (retained)."""
        return self._t(f"roi/{roi}/{label}/count")

    @property
    def snapshot_image(self) -> str:
        """The snapshot again, never retained: Home Assistant's `image` entity reads it, so
        a reconnect (which re-delivers retained messages) never looks like a new picture."""
        return self._t("snapshot/image")

    @property
    def discovery(self) -> str:
        return f"{self.discovery_prefix}/device/camnode_{self.node_id}/config"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def command_of(self, topic: str) -> str | None:
        """`camnode/x/request/roi/add` -> `roi/add`; plain set topics -> their name."""
        prefix = self._t("request/")
        if topic.startswith(prefix):
            return topic[len(prefix):] or None
        for plain in PLAIN_COMMANDS:
            if topic == self._t(plain):
                return plain
        return None
