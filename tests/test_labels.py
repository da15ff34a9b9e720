"""Label catalogs: built from specs and task labels, skeleton edges from svg, stable colours."""

from __future__ import annotations

import cvat_aa
import PIL.Image
import pytest
from cvat_aa.labels import (
    LabelCatalog,
    LabelInfo,
    rename_skeleton_nodes,
    skeleton_edges,
    stable_color,
)

POINTS = (LabelInfo(21, "head"), LabelInfo(22, "body"), LabelInfo(23, "tail"))


def test_a_colour_chosen_from_a_name_is_the_same_every_time():
    assert stable_color("car") == stable_color("car")
    assert stable_color("car").startswith("#") and len(stable_color("car")) == 7


def test_a_label_keeps_its_own_colour():
    catalog = LabelCatalog.from_spec(
        [cvat_aa.label_spec("car", 0, color="#123456"), cvat_aa.label_spec("bus", 1)]
    )
    assert catalog.named("car").color == "#123456"
    assert catalog.named("bus").color == stable_color("bus")


def test_edges_join_the_sublabels_that_circles_name():
    svg = (
        '<line data-node-from="2" data-node-to="1"></line><line data-node-from="3" data-node-to="2"></line>'
        '<circle data-node-id="1" data-label-name="tail"></circle>'
        '<circle data-node-id="2" data-label-name="head"></circle>'
        '<circle data-node-id="3" data-label-name="body"></circle>'
    )
    assert skeleton_edges(svg, POINTS) == [(21, 23), (22, 21)]


def test_edges_follow_the_label_ids_cvat_writes_into_its_svg():
    svg = (
        '<line x1="1" data-type="edge" data-node-from="7" data-node-to="8"></line>'
        '<circle r="1" data-type="element node" data-node-id="7" data-label-id="23"></circle>'
        '<circle r="1" data-type="element node" data-node-id="8" data-label-id="22"></circle>'
    )
    assert skeleton_edges(svg, POINTS) == [(23, 22)]


def test_without_circles_nodes_are_the_sublabels_in_order():
    svg = '<line data-node-from="1" data-node-to="3"></line><line data-node-from="3" data-node-to="9"></line>'
    assert skeleton_edges(svg, POINTS) == [(21, 23)]


def test_no_svg_means_no_edges():
    assert skeleton_edges("", POINTS) == []


def test_task_labels_are_read_with_their_colours_sublabels_and_svg(cvat_server, cvat_client):
    svg = '<line data-node-from="1" data-node-to="2"></line>'
    task_id = cvat_server.create_task(
        "skeleton",
        images=[PIL.Image.new("RGB", (8, 8))],
        labels=[
            {"name": "car", "type": "rectangle", "color": "#ff0000"},
            {
                "name": "cat",
                "type": "skeleton",
                "svg": svg,
                "sublabels": [
                    {"name": "head", "type": "points"},
                    {"name": "tail", "type": "points"},
                ],
            },
        ],
    )
    catalog = LabelCatalog.from_task_labels(cvat_client.tasks.retrieve(task_id).get_labels())
    assert [label.name for label in catalog] == ["car", "cat"]
    assert catalog.named("car").color == "#ff0000"
    cat = catalog.named("cat")
    head, tail = (cat.sublabel_named(name).id for name in ("head", "tail"))
    assert cat.edges() == [(head, tail)]


def test_with_conv_mask_to_poly_a_mask_label_is_a_polygon_label():
    catalog = LabelCatalog.from_spec(
        [cvat_aa.label_spec("blob", 0, type="mask")], conv_mask_to_poly=True
    )
    assert catalog.named("blob").type == "polygon"


def test_attributes_keep_their_ids_types_values_and_defaults():
    label = LabelCatalog.from_spec(
        [
            cvat_aa.label_spec(
                "car", 0, attributes=[cvat_aa.select_attribute_spec("colour", 3, ["red", "blue"])]
            )
        ]
    ).named("car")
    attribute = label.attribute(3)
    assert (attribute.name, attribute.input_type, attribute.values, attribute.default_value) == (
        "colour",
        "select",
        ("red", "blue"),
        "red",
    )
    assert label.attribute_named("colour") is attribute


def test_an_unknown_name_is_reported_with_the_known_ones():
    catalog = LabelCatalog.from_spec([cvat_aa.label_spec("car", 0)])
    with pytest.raises(KeyError, match="no label named 'bus' \\(labels: 'car'\\)"):
        catalog.named("bus")
    assert catalog.name(99) == "99"


def test_renamed_skeleton_points_keep_their_edges():
    svg = (
        '<line data-node-from="1" data-node-to="2"></line>'
        '<circle data-node-id="1" data-label-name="head"></circle>'
        '<circle data-node-id="2" data-label-name="body"></circle>'
    )
    renamed = rename_skeleton_nodes(svg, [(21, "head"), (22, "body")], {"head": "nose"})
    points = (LabelInfo(21, "nose"), LabelInfo(22, "body"))
    assert skeleton_edges(renamed, points) == [(21, 22)]


def test_leaving_out_a_point_of_an_svg_without_circles_keeps_the_other_edges():
    lines = (
        '<line data-node-from="1" data-node-to="2"></line>'
        '<line data-node-from="2" data-node-to="3"></line>'
    )
    svg = rename_skeleton_nodes(lines, [(21, "head"), (22, "body"), (23, "tail")], {"head": None})
    assert skeleton_edges(svg, POINTS[1:]) == [(22, 23)]
