"""The module form for `objects`: its list and map parameters (labels, roi_labels) can be
set from the page, and a refused one is shown at its field."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import open_page, read_config
from tests.integration.test_objects_model import model_dir  # noqa: F401 (fixture)

expect.set_options(timeout=10_000)


def test_labels_and_roi_filters_are_set_from_the_form(run_node, page, config_path,
                                                      model_dir):  # noqa: F811
    node = run_node(env={"CAMNODE_MODEL_DIR": str(model_dir)})
    open_page(page, node)
    page.select_option("#module", "objects")
    labels = page.locator("#param-labels")
    # The tracked labels are a multiple choice, prefilled with the defaults.
    assert labels.evaluate("s => s.multiple") is True
    chosen = labels.evaluate("s => [...s.selectedOptions].map(o => o.textContent)")
    assert "person" in chosen and "car" in chosen and "toothbrush" not in chosen
    roi = page.locator("#param-roi_labels")
    expect(roi).to_have_value("{}")
    # Broken JSON: the server refuses it and says so at the field; nothing changes.
    roi.fill('{"door": "car"')
    page.click("#module-apply")
    expect(page.locator("#param-roi_labels-error")).to_contain_text("is not of type 'object'")
    assert node.state()["module"] == "service"
    labels.select_option(["person", "dog"])
    roi.fill('{"door": ["dog"]}')
    page.click("#module-apply")
    expect(page.locator("#s-module")).to_have_text("objects", timeout=20_000)
    params = read_config(config_path)["pipeline"]["module_params"]
    assert params["labels"] == ["person", "dog"]
    assert params["roi_labels"] == {"door": ["dog"]}
    assert node.state()["module_status"]["labels"] == ["dog", "person"]
