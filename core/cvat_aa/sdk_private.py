"""The one home of cvat-sdk's private names that cvat-aa relies on.

cvat-aa reuses cvat-sdk's own label mapper (so that its checks and messages are exactly
cvat-sdk's) and reads its models' fields without going through their validating accessors
(so that checking every shape of a large run stays cheap). Both are private to cvat-sdk and
may change in any release. Every use goes through this module, and ``tests/test_sdk_private.py``
checks each of them against the installed cvat-sdk, so that an upgrade that breaks one fails
the test suite instead of a user's run. The policy: reuse cvat-sdk's private code only here;
where cvat-aa needs cvat-cli's behaviour (parameters, login), it is written anew and tested
against cvat-cli instead of importing ``cvat_cli._internal``.
"""

from __future__ import annotations

from typing import Any

from cvat_sdk.auto_annotation.driver import (
    _AnnotationMapper as AnnotationMapper,
)
from cvat_sdk.auto_annotation.driver import (
    _AttributeNameMapping as AttributeNameMapping,
)
from cvat_sdk.auto_annotation.driver import (
    _LabelNameMapping as LabelNameMapping,
)
from cvat_sdk.auto_annotation.driver import (
    _SpecNameMapping as SpecNameMapping,
)
from cvat_sdk.auto_annotation.driver import (
    _SublabelNameMapping as SublabelNameMapping,
)

__all__ = [
    "AnnotationMapper",
    "AttributeNameMapping",
    "LabelNameMapping",
    "SpecNameMapping",
    "SublabelNameMapping",
    "fields",
]


def fields(model: Any) -> dict[str, Any]:
    """The fields of a cvat-sdk model object, as the live dict it keeps them in (changes to it
    change the model, without the model's type checks: only for values already checked)."""
    return model._data_store
