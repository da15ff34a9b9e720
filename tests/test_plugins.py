"""Discovery through entry points, loading by name/module/file, and the hooks."""

from __future__ import annotations

import logging
import subprocess
import sys

import cvat_aa
import PIL.Image
import pytest
from cvat_aa import plugins

FUNCTION_MODULE = """
    import cvat_aa

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("{label}", 0, type="rectangle")])

    def detect(context, image):
        return [cvat_aa.rectangle(0, [0, 0, image.width, image.height])]
"""

FACTORY_MODULE = """
    '''Boxes the whole image; a test factory.'''
    import cvat_aa

    class Whole:
        def __init__(self, label, margin):
            self.spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec(label, 0)])
            self.margin = margin

        def detect(self, context, image):
            m = self.margin
            return [cvat_aa.rectangle(0, [m, m, image.width - m, image.height - m])]

    def create(label: str = "thing", margin: int = 0):
        return Whole(label, margin)
"""


def test_a_registered_function_is_listed_with_its_distribution(make_distribution):
    make_distribution(
        "cvat-aa-whole",
        version="2.3",
        modules={"whole_factory_a": FACTORY_MODULE},
        entry_points={plugins.FUNCTIONS_GROUP: {"whole": "whole_factory_a"}},
    )
    [entry] = [e for e in cvat_aa.discover_functions() if e.name == "whole"]
    assert (entry.distribution, entry.version, entry.status) == ("cvat-aa-whole", "2.3", "ok")
    assert entry.summary == "Boxes the whole image; a test factory."


def test_a_function_is_loaded_by_its_entry_point_name_with_parameters(make_distribution):
    make_distribution(
        "cvat-aa-whole",
        modules={"whole_factory_b": FACTORY_MODULE},
        entry_points={plugins.FUNCTIONS_GROUP: {"whole": "whole_factory_b:create"}},
    )
    function = cvat_aa.load_function("whole", label="box", margin=2)
    assert function.spec.labels[0].name == "box"
    [box] = function.detect(None, PIL.Image.new("RGB", (10, 8)))
    assert box.points == [2, 2, 8, 6]


def test_a_plugin_that_fails_to_import_is_listed_as_broken_and_others_still_work(make_distribution):
    make_distribution(
        "cvat-aa-broken",
        version="0.1",
        modules={"broken_plugin_c": "import does_not_exist_anywhere\n"},
        entry_points={plugins.FUNCTIONS_GROUP: {"broken": "broken_plugin_c"}},
    )
    make_distribution(
        "cvat-aa-fine",
        modules={"fine_plugin_c": FUNCTION_MODULE.format(label="car")},
        entry_points={plugins.FUNCTIONS_GROUP: {"fine": "fine_plugin_c"}},
    )
    entries = {e.name: e for e in cvat_aa.discover_functions()}
    assert entries["broken"].status == "broken"
    assert "does_not_exist_anywhere" in entries["broken"].error
    assert entries["fine"].status == "ok"
    with pytest.raises(
        cvat_aa.BadFunctionError, match=r"'broken' \(from cvat-aa-broken 0.1\) is broken"
    ):
        cvat_aa.load_function("broken")


def test_an_entry_point_object_that_is_not_a_function_is_listed_as_broken(make_distribution):
    make_distribution(
        "cvat-aa-odd",
        modules={"odd_plugin_d": "VALUE = 42\n"},
        entry_points={plugins.FUNCTIONS_GROUP: {"odd": "odd_plugin_d:VALUE"}},
    )
    [entry] = [e for e in cvat_aa.discover_functions() if e.name == "odd"]
    assert entry.status == "broken" and "is not a function" in entry.error


def test_a_name_registered_twice_is_reported(make_distribution):
    for n, dist in enumerate(["cvat-aa-one", "cvat-aa-two"]):
        make_distribution(
            dist,
            modules={f"twice_plugin_{n}": FUNCTION_MODULE.format(label="car")},
            entry_points={plugins.FUNCTIONS_GROUP: {"twice": f"twice_plugin_{n}"}},
        )
    [entry] = [e for e in cvat_aa.discover_functions() if e.name == "twice"]
    assert entry.status == "broken" and "registered twice" in entry.error


def test_the_allowlist_variable_loads_only_the_named_plugins(make_distribution, monkeypatch):
    for name in ("keep", "drop"):
        make_distribution(
            f"cvat-aa-{name}",
            modules={f"{name}_plugin_e": FUNCTION_MODULE.format(label=name)},
            entry_points={plugins.FUNCTIONS_GROUP: {name: f"{name}_plugin_e"}},
        )
    monkeypatch.setenv("CVAT_AA_LOAD_PLUGINS", "keep")
    assert [e.name for e in cvat_aa.discover_functions()] == ["keep"]
    with pytest.raises(cvat_aa.UnknownFunctionError, match="disabled"):
        cvat_aa.load_function("drop")


def test_the_blocklist_variable_skips_a_plugin_that_breaks_start_up(make_distribution, monkeypatch):
    make_distribution(
        "cvat-aa-crash",
        modules={"crash_plugin_f": "raise SystemError('boom at import')\n"},
        entry_points={plugins.FUNCTIONS_GROUP: {"crash": "crash_plugin_f"}},
    )
    monkeypatch.setenv("CVAT_AA_DISABLE_PLUGINS", "crash")
    assert "crash" not in [e.name for e in cvat_aa.discover_functions()]


def test_an_unknown_name_lists_the_installed_functions(make_distribution):
    make_distribution(
        "cvat-aa-fine",
        modules={"fine_plugin_g": FUNCTION_MODULE.format(label="car")},
        entry_points={plugins.FUNCTIONS_GROUP: {"fine": "fine_plugin_g"}},
    )
    with pytest.raises(
        cvat_aa.UnknownFunctionError, match="no function named 'fnie'.*installed: .*fine"
    ):
        cvat_aa.load_function("fnie")


def test_a_function_is_loaded_from_a_module_name(make_distribution):
    make_distribution("cvat-aa-mod", modules={"module_function_h": FACTORY_MODULE})
    function = cvat_aa.load_function(function_module="module_function_h", margin=1)
    assert function.spec.labels[0].name == "thing"


def test_a_function_is_loaded_from_a_file(tmp_path):
    path = tmp_path / "my_function.py"
    path.write_text(FACTORY_MODULE.replace("\n    ", "\n"))
    function = cvat_aa.load_function(str(path), label="x")
    assert function.spec.labels[0].name == "x"


def test_a_file_that_raises_is_a_bad_function(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("1 / 0\n")
    with pytest.raises(cvat_aa.BadFunctionError, match="bad.py' failed to run: ZeroDivisionError"):
        cvat_aa.load_function(function_file=path)


def test_parameters_for_a_function_without_factory_are_refused(make_distribution):
    make_distribution(
        "cvat-aa-plain", modules={"plain_function_i": FUNCTION_MODULE.format(label="a")}
    )
    with pytest.raises(cvat_aa.FunctionParameterError, match="takes no parameters"):
        cvat_aa.load_function("plain_function_i", size=3)


def test_a_wrong_parameter_error_lists_the_factorys_parameters(make_distribution):
    make_distribution("cvat-aa-fac", modules={"factory_function_j": FACTORY_MODULE})
    with pytest.raises(
        cvat_aa.FunctionParameterError, match="label: str = 'thing', margin: int = 0"
    ):
        cvat_aa.load_function("factory_function_j", colour="red")


def test_a_factory_returning_something_without_spec_is_a_bad_function(make_distribution):
    make_distribution(
        "cvat-aa-nospec", modules={"nospec_k": "def create():\n    return object()\n"}
    )
    with pytest.raises(cvat_aa.BadFunctionError, match="no 'spec' attribute"):
        cvat_aa.load_function("nospec_k")


def test_an_object_following_cvat_sdks_protocol_is_accepted_as_is():
    class SdkStyle:
        spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("a", 0)])

        def detect(self, context, image):
            return []

    function = SdkStyle()
    assert cvat_aa.load_function(function) is function


# --- hooks -------------------------------------------------------------------------------


class _Counting:
    def __init__(self):
        self.spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("a", 0)])
        self.batches = []

    def detect(self, context, image):
        return [cvat_aa.rectangle(0, [0, 0, 1, 1])]


def _contexts(n):
    return [cvat_aa.FrameContext(frame_name=f"{i}.jpg") for i in range(n)]


def test_detect_hook_calls_the_function_frame_by_frame(fresh_plugin_manager):
    results = plugins.hooks().detect(_Counting(), _contexts(3), [PIL.Image.new("RGB", (2, 2))] * 3)
    assert [len(r) for r in results] == [1, 1, 1]


def test_detect_hook_prefers_detect_batch_when_the_function_has_it(fresh_plugin_manager):
    class Batching(_Counting):
        def detect_batch(self, contexts, images):
            self.batches.append(len(images))
            return [[] for _ in images]

    function = Batching()
    plugins.hooks().detect(function, _contexts(4), [PIL.Image.new("RGB", (2, 2))] * 4)
    assert function.batches == [4]


def test_detect_batch_returning_the_wrong_count_is_a_bad_function(fresh_plugin_manager):
    class Short(_Counting):
        def detect_batch(self, contexts, images):
            return [[]]

    with pytest.raises(cvat_aa.BadFunctionError, match="1 results for 2 frames"):
        plugins.hooks().detect(Short(), _contexts(2), [PIL.Image.new("RGB", (2, 2))] * 2)


WRAPPER_PLUGIN = """
    import cvat_aa

    @cvat_aa.hookimpl(wrapper=True)
    def cvat_aa_detect(function, contexts, images):
        results = yield
        # Drop boxes smaller than 2x2 pixels.
        return [[a for a in frame if a.points[2] - a.points[0] >= 2] for frame in results]
"""


def test_a_hook_plugin_can_post_process_detections(make_distribution):
    make_distribution(
        "cvat-aa-filter",
        modules={"filter_hooks_l": WRAPPER_PLUGIN},
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"filter": "filter_hooks_l"}},
    )

    class TwoBoxes(_Counting):
        def detect(self, context, image):
            return [cvat_aa.rectangle(0, [0, 0, 1, 1]), cvat_aa.rectangle(0, [0, 0, 5, 5])]

    [frame] = plugins.hooks().detect(TwoBoxes(), _contexts(1), [PIL.Image.new("RGB", (8, 8))])
    assert [a.points for a in frame] == [[0, 0, 5, 5]]


def test_a_broken_hook_plugin_is_skipped_with_a_warning(make_distribution, caplog):
    make_distribution(
        "cvat-aa-badhooks",
        version="0.2",
        modules={"bad_hooks_m": "raise ImportError('no torch here')\n"},
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"badhooks": "bad_hooks_m"}},
    )
    with caplog.at_level(logging.WARNING, logger="cvat_aa.plugins"):
        plugins.hooks()
    assert "'badhooks' from cvat-aa-badhooks 0.2 failed to load" in caplog.text


def test_the_spec_hook_returns_the_functions_spec(fresh_plugin_manager):
    function = _Counting()
    assert plugins.hooks().spec(function) is function.spec


def test_the_spec_hook_rejects_a_non_spec(fresh_plugin_manager):
    function = _Counting()
    function.spec = {"labels": []}
    with pytest.raises(cvat_aa.BadFunctionError, match="not a DetectionFunctionSpec"):
        plugins.hooks().spec(function)


def test_the_trace_variable_logs_every_hook_call(fresh_plugin_manager, monkeypatch, caplog):
    monkeypatch.setenv("CVAT_AA_TRACE_HOOKS", "1")
    with caplog.at_level(logging.DEBUG, logger="cvat_aa.plugins"):
        plugins.hooks().spec(_Counting())
    assert "cvat_aa_spec" in caplog.text


# --- plugin code never decides how cvat-aa ends -------------------------------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("import sys\nsys.exit(0)\n", "SystemExit: 0"),
        ("raise SystemExit('no GPU, bye')\n", "SystemExit: no GPU, bye"),
        ("raise GeneratorExit\n", "GeneratorExit"),
    ],
)
def test_a_plugin_that_exits_at_import_is_listed_as_broken_and_others_still_work(
    make_distribution, source, reason
):
    make_distribution(
        "cvat-aa-quitter",
        version="0.3",
        modules={"quitter_plugin_n": source},
        entry_points={plugins.FUNCTIONS_GROUP: {"quitter": "quitter_plugin_n"}},
    )
    make_distribution(
        "cvat-aa-fine",
        modules={"fine_plugin_n": FUNCTION_MODULE.format(label="car")},
        entry_points={plugins.FUNCTIONS_GROUP: {"fine": "fine_plugin_n"}},
    )
    entries = {e.name: e for e in cvat_aa.discover_functions()}
    assert (entries["quitter"].status, entries["quitter"].error) == ("broken", reason)
    assert entries["fine"].status == "ok"
    with pytest.raises(cvat_aa.BadFunctionError, match=r"'quitter' \(from cvat-aa-quitter 0.3\)"):
        cvat_aa.load_function("quitter")


def test_a_hook_plugin_that_exits_at_import_is_skipped_with_a_warning(make_distribution, caplog):
    make_distribution(
        "cvat-aa-quitter",
        modules={"quitter_hooks_o": "import sys\nsys.exit(0)\n"},
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"quitter": "quitter_hooks_o"}},
    )
    with caplog.at_level(logging.WARNING, logger="cvat_aa.plugins"):
        plugins.hooks()
    assert "'quitter' from cvat-aa-quitter 1.0 failed to load" in caplog.text
    assert "SystemExit: 0" in caplog.text


def test_a_factory_that_exits_is_a_bad_function(make_distribution):
    make_distribution(
        "cvat-aa-quitter",
        modules={"quitter_factory_p": "import sys\ndef create():\n    sys.exit(2)\n"},
        entry_points={plugins.FUNCTIONS_GROUP: {"quitter": "quitter_factory_p"}},
    )
    with pytest.raises(
        cvat_aa.BadFunctionError, match="the factory of function 'quitter' raised SystemExit: 2"
    ):
        cvat_aa.load_function("quitter")


def test_a_module_or_file_that_exits_at_import_is_a_bad_function(make_distribution, tmp_path):
    make_distribution("cvat-aa-mod", modules={"quitter_module_q": "raise SystemExit(0)\n"})
    with pytest.raises(cvat_aa.BadFunctionError, match="failed to import: SystemExit: 0"):
        cvat_aa.load_function(function_module="quitter_module_q")
    path = tmp_path / "quitter.py"
    path.write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(cvat_aa.BadFunctionError, match="failed to run: SystemExit: 0"):
        cvat_aa.load_function(function_file=path)


def test_a_keyboard_interrupt_at_import_still_interrupts(make_distribution):
    make_distribution(
        "cvat-aa-slow",
        modules={"slow_plugin_r": "raise KeyboardInterrupt\n"},
        entry_points={plugins.FUNCTIONS_GROUP: {"slow": "slow_plugin_r"}},
    )
    with pytest.raises(KeyboardInterrupt):
        cvat_aa.discover_functions()


def test_a_spec_that_exits_is_a_bad_function(fresh_plugin_manager):
    class ExitingSpec(_Counting):
        @property
        def spec(self):
            raise SystemExit(0)

        @spec.setter
        def spec(self, value):
            pass

    with pytest.raises(cvat_aa.BadFunctionError, match="spec raised SystemExit: 0"):
        plugins.hooks().spec(ExitingSpec())


def test_an_observer_hook_that_exits_is_a_bad_function_naming_the_hook(make_distribution):
    make_distribution(
        "cvat-aa-quitter",
        modules={
            "quitter_hooks_s": (
                "import sys, cvat_aa\n"
                "@cvat_aa.hookimpl\n"
                "def cvat_aa_run_started(run):\n"
                "    sys.exit(0)\n"
            )
        },
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"quitter": "quitter_hooks_s"}},
    )
    with pytest.raises(
        cvat_aa.BadFunctionError,
        match="hook plugin 'quitter' raised SystemExit: 0 in cvat_aa_run_started;"
        ".*CVAT_AA_DISABLE_PLUGINS=quitter",
    ):
        plugins.hooks().run_started({"target": "task"})


def test_a_function_file_has_the_same_module_name_in_every_process(tmp_path):
    path = tmp_path / "same.py"
    path.write_text(FACTORY_MODULE.replace("\n    ", "\n"))
    name = cvat_aa.load_function(str(path)).__class__.__module__
    script = (
        f"import sys, cvat_aa\nprint(cvat_aa.load_function({str(path)!r}).__class__.__module__)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == name


def test_without_hook_plugins_detection_bypasses_pluggy(fresh_plugin_manager, monkeypatch):
    # The hot path: with nothing to wrap detection, a batch costs no pluggy call.
    hook = plugins.hooks().pm.hook
    counting = _CountingCaller(hook.cvat_aa_detect)
    monkeypatch.setattr(hook, "cvat_aa_detect", counting)
    results = plugins.hooks().detect(_Counting(), _contexts(2), [PIL.Image.new("RGB", (2, 2))] * 2)
    assert [len(r) for r in results] == [1, 1]
    assert counting.calls == 0


def test_a_detect_wrapper_still_sees_every_batch(make_distribution):
    make_distribution(
        "cvat-aa-small-box-filter",
        modules={"small_box_filter": WRAPPER_PLUGIN},
        entry_points={"cvat_aa.plugins": {"small_box_filter": "small_box_filter"}},
    )
    results = plugins.hooks().detect(_Counting(), _contexts(1), [PIL.Image.new("RGB", (2, 2))])
    assert results == [[]], "the wrapper dropped the 1x1 box"


class _CountingCaller:
    """A hook caller that counts the calls made through it."""

    def __init__(self, caller):
        self.caller = caller
        self.calls = 0

    def get_hookimpls(self):
        return self.caller.get_hookimpls()

    def __call__(self, **kwargs):
        self.calls += 1
        return self.caller(**kwargs)


# --- the three kinds ----------------------------------------------------------------------

INTERACTION_MODULE = """
    '''Finds nothing; a test interactor.'''
    import cvat_sdk.auto_annotation as cvataa

    spec = cvataa.InteractionFunctionSpec(min_pos_points=1)

    def detect(context, pp_image, prompts):
        return []
"""

TRACKING_MODULE = """
    '''Never moves; a test tracker.'''
    import cvat_sdk.auto_annotation as cvataa

    spec = cvataa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def init_tracking_state(context, pp_image, shape):
        return shape

    def track(context, pp_image, state):
        return state
"""

FACTORY_KINDS_MODULE = """
    from __future__ import annotations

    import functools

    import cvat_aa
    import cvat_sdk.auto_annotation as cvataa

    class Tracker:
        spec = cvataa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

        def init_tracking_state(self, context, pp_image, shape):
            return shape

        def track(self, context, pp_image, state):
            return state

    class Interactor:
        @property
        def spec(self) -> cvataa.InteractionFunctionSpec:
            return cvataa.InteractionFunctionSpec(min_pos_points=1)

        def detect(self, context, pp_image, prompts):
            return []

    class Cached:
        @functools.cached_property
        def spec(self) -> cvataa.DetectionFunctionSpec:
            return cvataa.DetectionFunctionSpec(labels=[])

        def detect(self, context, image):
            return []

    class Annotated:
        spec: cvataa.TrackingFunctionSpec  # set in __init__, declared on the class

        def __init__(self):
            self.spec = cvataa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

        def init_tracking_state(self, context, pp_image, shape):
            return shape

        def track(self, context, pp_image, state):
            return state

    BUILT = []

    def make_annotated() -> Annotated:
        BUILT.append("annotated")
        return Annotated()

    def make_tracker() -> Tracker:
        BUILT.append("tracker")
        return Tracker()

    def make_interactor() -> Interactor:
        BUILT.append("interactor")
        return Interactor()

    def make_by_protocol() -> cvataa.InteractionFunction:
        BUILT.append("protocol")
        return Interactor()

    def make_detector() -> cvat_aa.DetectionFunction:
        BUILT.append("detector")
        raise AssertionError("never built while listing")

    def make_anything():
        BUILT.append("anything")
        return Tracker()

    def make_unresolvable() -> NoSuchClass:  # noqa: F821
        BUILT.append("unresolvable")
        return Tracker()
"""


def _kinds_distribution(make_distribution):
    make_distribution(
        "cvat-aa-kinds",
        modules={
            "kinds_interaction_m": INTERACTION_MODULE,
            "kinds_tracking_m": TRACKING_MODULE,
            "kinds_factories_m": FACTORY_KINDS_MODULE,
        },
        entry_points={
            plugins.FUNCTIONS_GROUP: {
                "clicks": "kinds_interaction_m",
                "follows": "kinds_tracking_m",
                "made_tracker": "kinds_factories_m:make_tracker",
                "made_interactor": "kinds_factories_m:make_interactor",
                "made_by_protocol": "kinds_factories_m:make_by_protocol",
                "made_detector": "kinds_factories_m:make_detector",
                "made_anything": "kinds_factories_m:make_anything",
                "made_annotated": "kinds_factories_m:make_annotated",
                "made_unresolvable": "kinds_factories_m:make_unresolvable",
                "tracker_class": "kinds_factories_m:Tracker",
                "cached_class": "kinds_factories_m:Cached",
            }
        },
    )


def test_functions_of_every_kind_are_discovered_with_their_kind(make_distribution):
    _kinds_distribution(make_distribution)
    kinds = {e.name: (e.status, e.kind) for e in cvat_aa.discover_functions()}
    assert kinds["clicks"] == ("ok", "interaction")
    assert kinds["follows"] == ("ok", "tracking")


def test_a_factorys_kind_comes_from_its_return_annotation_without_building_it(
    make_distribution,
):
    _kinds_distribution(make_distribution)
    kinds = {e.name: e.kind for e in cvat_aa.discover_functions()}
    assert kinds["made_tracker"] == "tracking"  # a class attribute spec
    assert kinds["made_interactor"] == "interaction"  # a property annotated with its type
    assert kinds["made_by_protocol"] == "interaction"  # cvat-sdk's protocol
    assert kinds["made_detector"] == "detection"  # cvat-aa's protocol
    assert kinds["tracker_class"] == "tracking"  # the class is its own factory
    assert kinds["made_annotated"] == "tracking"  # a class annotation of spec
    assert kinds["cached_class"] == "detection"  # a cached_property annotated with its type
    import kinds_factories_m

    assert kinds_factories_m.BUILT == []


def test_a_factory_that_does_not_say_what_it_returns_is_of_unknown_kind(make_distribution):
    _kinds_distribution(make_distribution)
    kinds = {e.name: (e.status, e.kind) for e in cvat_aa.discover_functions()}
    assert kinds["made_anything"] == ("ok", None)
    assert kinds["made_unresolvable"] == ("ok", None)


def test_interaction_and_tracking_functions_load_by_name(make_distribution):
    _kinds_distribution(make_distribution)
    assert cvat_aa.function_kind(cvat_aa.load_function("clicks")) == "interaction"
    assert cvat_aa.function_kind(cvat_aa.load_function("follows")) == "tracking"
    assert cvat_aa.function_kind(cvat_aa.load_function("made_anything")) == "tracking"


def test_a_tracker_without_track_is_not_a_function():
    class HalfATracker:
        spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

        def init_tracking_state(self, context, pp_image, shape):
            return shape

    with pytest.raises(cvat_aa.BadFunctionError, match="'init_tracking_state' and 'track'"):
        cvat_aa.load_function(HalfATracker())


@pytest.mark.parametrize(
    "spec",
    [
        cvat_aa.InteractionFunctionSpec(min_pos_points=1),
        cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"]),
    ],
)
def test_the_spec_hook_returns_specs_of_every_kind(fresh_plugin_manager, spec):
    function = _Counting()
    function.spec = spec
    assert plugins.hooks().spec(function) is spec


def test_the_core_preprocesses_with_the_functions_own_method_or_not_at_all(
    fresh_plugin_manager,
):
    class Preprocessing:
        def preprocess_image(self, context, image):
            return ("pp", image)

    hooks = plugins.hooks()
    assert hooks.preprocess_image(Preprocessing(), None, "image") == ("pp", "image")
    assert hooks.preprocess_image(object(), None, "image") == "image"


def test_a_traced_hook_call_goes_through_pluggy(fresh_plugin_manager, monkeypatch, caplog):
    monkeypatch.setenv("CVAT_AA_TRACE_HOOKS", "1")

    class Follows:
        def track(self, context, pp_image, state):
            return None

    with caplog.at_level(logging.DEBUG, logger="cvat_aa.plugins"):
        assert plugins.hooks().track(Follows(), None, "pp", "state") is None
    assert "cvat_aa_track" in caplog.text
