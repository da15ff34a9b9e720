"""cvat-sdk's private names that cvat-aa relies on: used in one module, checked here.

An upgrade of cvat-sdk that renames or reshapes one of them must fail these tests, not a
user's run. See ``cvat_aa/sdk_private.py`` for the policy.
"""

import inspect
import re
from pathlib import Path

from cvat_sdk import models

import cvat_aa
from cvat_aa import sdk_private

CORE = Path(cvat_aa.__file__).parent
PRIVATE_USE = re.compile(r"\._data_store\b|cvat_sdk\.[\w.]*\._[A-Za-z]|import\s*\(?\s*_[A-Z]")


def test_the_annotation_mapper_takes_what_cvat_aa_passes():
    parameters = inspect.signature(sdk_private.AnnotationMapper).parameters
    for name in ("logger", "fun_labels", "ds_labels", "allow_unmatched_labels", "spec_nm"):
        assert name in parameters, name
    assert "conv_mask_to_poly" in parameters


def test_the_name_mappings_build_as_cvat_aa_builds_them():
    sdk_private.SpecNameMapping(
        labels={
            "a": sdk_private.LabelNameMapping(
                "b",
                attributes={"x": sdk_private.AttributeNameMapping("y")},
                sublabels={"s": sdk_private.SublabelNameMapping("t", attributes={})},
            )
        }
    )


def test_model_fields_are_the_models_live_data():
    shape = models.LabeledShapeRequest(type="rectangle", frame=0, label_id=1, points=[1, 2, 3, 4])
    data = sdk_private.fields(shape)
    assert data["points"] == [1, 2, 3, 4]
    data["points"] = [0, 0, 1, 1]
    assert shape.points == [0, 0, 1, 1]


def test_no_other_core_module_uses_cvat_sdk_private_names():
    users = [
        str(path.relative_to(CORE))
        for path in CORE.rglob("*.py")
        if path.name != "sdk_private.py" and PRIVATE_USE.search(path.read_text())
    ]
    assert users == [], "go through cvat_aa.sdk_private"
