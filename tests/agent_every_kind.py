"""serve_functions.EveryKind as a module-level function, for cvat-cli's ``--function-file``."""

from serve_functions import EveryKind

_function = EveryKind()
spec = _function.spec
detect = _function.detect
