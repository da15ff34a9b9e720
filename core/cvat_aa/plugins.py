"""The plugin manager, entry-point discovery, and loading functions by name, module or file.

Environment variables:

* ``CVAT_AA_LOAD_PLUGINS``: a comma-separated allowlist of entry-point names (functions and
  hook plugins). When set, nothing else is loaded; set it to an empty string to load none.
* ``CVAT_AA_DISABLE_PLUGINS``: a comma-separated blocklist of entry-point names.
* ``CVAT_AA_TRACE_HOOKS``: when ``1``, every hook call is logged at DEBUG level.

Plugin code never decides how cvat-aa ends. Whatever it raises while being imported, built,
asked for its spec or called as a hook, ``SystemExit`` (a ``sys.exit()`` at import) and
``GeneratorExit`` included, is reported as that plugin's failure: a broken entry in
``functions list``, or a ``BadFunctionError``. Only ``KeyboardInterrupt`` passes through.
Exceptions a detection function raises on frames are the pipeline's business (see
``pipeline.detection``); those of interaction and tracking functions become
``FunctionFailedError`` in :func:`call_function`.

Functions are of three kinds (detection, interaction, tracking: ``interface.function_kind``).
Discovery tells each entry's kind without building anything: from the object's spec, or from
what its factory is annotated to return.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cvat_sdk.auto_annotation as sdk_aa
import importlib_metadata
import pluggy
from cvat_sdk.api_client.exceptions import ApiTypeError, ApiValueError
from cvat_sdk.auto_annotation import DetectionFunctionSpec as SdkDetectionFunctionSpec

from . import hookspecs, interface
from .errors import BadRequestError, FunctionFailedError, UnknownFunctionError
from .interface import (
    SPEC_TYPES,
    BadFunctionError,
    DetectionAnnotation,
    FunctionKind,
    InteractionFunctionSpec,
    TrackingFunctionSpec,
    function_kind,
    kind_of_spec_type,
    validate_labels,
)
from .parameters import (
    FunctionParameterError,
    check_factory_parameters,
    describe_factory_parameters,
)
from .result_stages import RunOption, StageChain, StageRun

__all__ = [
    "COMMANDS_GROUP",
    "FUNCTIONS_GROUP",
    "HOOK_PLUGINS_GROUP",
    "FunctionEntry",
    "Hooks",
    "UnknownFunctionError",
    "call_function",
    "discover_functions",
    "get_plugin_manager",
    "hooks",
    "kind_before_building",
    "load_command_plugins",
    "load_function",
]

FUNCTIONS_GROUP = "cvat_aa.functions"
HOOK_PLUGINS_GROUP = "cvat_aa.plugins"
COMMANDS_GROUP = "cvat_aa.commands"
LOAD_ENV = "CVAT_AA_LOAD_PLUGINS"
DISABLE_ENV = "CVAT_AA_DISABLE_PLUGINS"
TRACE_ENV = "CVAT_AA_TRACE_HOOKS"

logger = logging.getLogger(__name__)

T = TypeVar("T")


def describe_exception(ex: BaseException) -> str:
    """``ValueError: bad value``, or ``SystemExit: 0``, for messages."""
    text = str(ex)
    return f"{type(ex).__name__}: {text}" if text else type(ex).__name__


def _plugin_code(what: str, action: Callable[[], T]) -> T:
    """Run plugin code; what it raises that is not an ``Exception`` (but for
    ``KeyboardInterrupt``) becomes a ``BadFunctionError`` naming ``what``."""
    try:
        return action()
    except (Exception, KeyboardInterrupt):
        raise
    except BaseException as ex:
        raise BadFunctionError(f"{what} raised {describe_exception(ex)}") from ex


def call_function(what: str, action: Callable[[], T]) -> T:
    """Run a call into an interaction or tracking function (``what`` names it in messages).

    A broken protocol is a ``BadFunctionError`` (cvat-sdk's own, raised by its result classes,
    becomes ours with its message); anything else the function raises, ``SystemExit``
    included, is a ``FunctionFailedError`` that carries it. Only ``KeyboardInterrupt`` and
    cvat-aa's own request errors pass through.
    """
    try:
        return action()
    except (BadFunctionError, BadRequestError, KeyboardInterrupt):
        raise
    except sdk_aa.BadFunctionError as ex:
        raise BadFunctionError(str(ex)) from ex
    except (ApiTypeError, ApiValueError) as ex:
        raise BadFunctionError(f"the function built an invalid result in {what}: {ex}") from ex
    except BaseException as ex:  # the function does not decide how we end
        reason = describe_exception(ex)
        raise FunctionFailedError(
            f"the function failed in {what}: {reason}", [], reason, ex
        ) from ex


def _name_list(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def is_enabled(name: str) -> bool:
    """Whether the allowlist and blocklist environment variables let ``name`` load."""
    allowed = os.environ.get(LOAD_ENV)
    if allowed is not None and name not in _name_list(allowed):
        return False
    return name not in _name_list(os.environ.get(DISABLE_ENV, ""))


def _entry_points(group: str) -> list[importlib_metadata.EntryPoint]:
    return sorted(importlib_metadata.entry_points(group=group), key=lambda ep: ep.name)


def _describe_dist(ep: importlib_metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


class _CoreImplementations:
    """cvat-aa's own hook implementations: the ones that call the function being run."""

    @hookspecs.hookimpl(trylast=True)
    def cvat_aa_spec(self, function: Any) -> Any:
        return function.spec

    @hookspecs.hookimpl(trylast=True)
    def cvat_aa_detect(
        self, function: Any, contexts: Sequence[Any], images: Sequence[Any]
    ) -> list[list[DetectionAnnotation]]:
        detect_batch = getattr(function, "detect_batch", None)
        if detect_batch is not None:
            results = [list(r) for r in detect_batch(contexts, images)]
            if len(results) != len(images):
                raise BadFunctionError(
                    f"detect_batch returned {len(results)} results for {len(images)} frames"
                )
            return results
        return [list(function.detect(c, i)) for c, i in zip(contexts, images, strict=True)]

    @hookspecs.hookimpl(trylast=True)
    def cvat_aa_preprocess_image(self, function: Any, context: Any, image: Any) -> Any:
        preprocess = getattr(function, "preprocess_image", None)
        return image if preprocess is None else preprocess(context, image)

    @hookspecs.hookimpl(trylast=True)
    def cvat_aa_interact(self, function: Any, context: Any, pp_image: Any, prompts: Any) -> Any:
        return function.detect(context, pp_image, prompts)

    @hookspecs.hookimpl(trylast=True)
    def cvat_aa_init_tracking_state(
        self, function: Any, context: Any, pp_image: Any, shape: Any
    ) -> Any:
        return function.init_tracking_state(context, pp_image, shape)

    @hookspecs.hookimpl(trylast=True)
    def cvat_aa_track(self, function: Any, context: Any, pp_image: Any, state: Any) -> Any:
        return function.track(context, pp_image, state)


_CORE = _CoreImplementations()


def _only_core(caller: pluggy.HookCaller) -> bool:
    """Whether cvat-aa's own implementation is the only one of this hook."""
    implementations = caller.get_hookimpls()
    return len(implementations) == 1 and implementations[0].plugin is _CORE


def _make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(_CORE, name="cvat_aa.core")
    if os.environ.get(TRACE_ENV) == "1":
        pm.trace.root.setwriter(lambda message: logger.debug("hook: %s", message.rstrip()))
        pm.enable_tracing()
    for ep in _entry_points(HOOK_PLUGINS_GROUP):
        if is_enabled(ep.name):
            _load_isolated(ep, "hook plugin", lambda plugin: pm.register(plugin, name=ep.name))
    return pm


def _load_isolated(
    ep: importlib_metadata.EntryPoint, kind: str, use: Callable[[Any], object]
) -> bool:
    """Load ``ep`` and hand what it names to ``use``, on its own.

    What either raises, but for ``KeyboardInterrupt``, is logged as a warning that names the
    ``kind`` of plugin, the entry point and its distribution, and False comes back: the caller
    goes on with the other plugins.
    """
    try:
        use(ep.load())
    except KeyboardInterrupt:
        raise
    except BaseException as ex:  # one broken plugin must not break the others (or exit)
        dist, version = _describe_dist(ep)
        logger.warning(
            "%s %r from %s %s failed to load and is skipped: %s",
            kind,
            ep.name,
            dist,
            version,
            describe_exception(ex),
        )
        return False
    return True


def load_command_plugins(commands: Any) -> list[str]:
    """Add the ``cvat-aa`` subcommands that other distributions provide; their entry points' names.

    Each ``cvat_aa.commands`` entry point names a ``register(commands)`` callable, which adds
    its subcommand to ``commands`` (argparse's subparsers). Each is loaded on its own, so a
    broken one is a warning and every other command still works. The allowlist and blocklist
    variables do not apply: they name functions and hook plugins, and a run with those
    disabled still needs every command.
    """
    return [
        ep.name
        for ep in _entry_points(COMMANDS_GROUP)
        if _load_isolated(ep, "command", lambda register: register(commands))
    ]


_plugin_manager: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created (and hook plugins loaded) on first use."""
    global _plugin_manager
    if _plugin_manager is None:
        _plugin_manager = _make_plugin_manager()
    return _plugin_manager


@attrs.frozen
class Hooks:
    """A typed façade over ``pm.hook``, so that call sites are checked."""

    pm: pluggy.PluginManager

    def spec(
        self, function: Any
    ) -> SdkDetectionFunctionSpec | InteractionFunctionSpec | TrackingFunctionSpec:
        """The function's spec, of any of the three kinds; a detection spec's labels checked."""
        spec = _plugin_code(
            "the function's spec", lambda: self.pm.hook.cvat_aa_spec(function=function)
        )
        function_kind(spec)  # BadFunctionError for anything but the three spec types
        if isinstance(spec, SdkDetectionFunctionSpec):
            # A cvat-sdk spec was validated by cvat-sdk, but a hook wrapper may have built
            # its own; checking again is cheap and gives our error type.
            validate_labels(spec.labels)
        return spec

    def detect(
        self, function: Any, contexts: Sequence[Any], images: Sequence[Any]
    ) -> list[list[DetectionAnnotation]]:
        caller = self.pm.hook.cvat_aa_detect
        if _only_core(caller) and os.environ.get(TRACE_ENV) != "1":
            # The hot path: no hook plugin wraps detection, so pluggy has nothing to add.
            return _CORE.cvat_aa_detect(function, contexts, images)
        return caller(function=function, contexts=contexts, images=images)

    def preprocess_image(self, function: Any, context: Any, image: Any) -> Any:
        """``pp_image`` for an interaction or tracking function (``cvat_aa_preprocess_image``)."""
        return self._call(
            "cvat_aa_preprocess_image", function=function, context=context, image=image
        )

    def interact(self, function: Any, context: Any, pp_image: Any, prompts: Any) -> Any:
        """What an interaction function finds for ``prompts`` (``cvat_aa_interact``)."""
        return self._call(
            "cvat_aa_interact",
            function=function,
            context=context,
            pp_image=pp_image,
            prompts=prompts,
        )

    def init_tracking_state(self, function: Any, context: Any, pp_image: Any, shape: Any) -> Any:
        """A tracking function's state for ``shape`` (``cvat_aa_init_tracking_state``)."""
        return self._call(
            "cvat_aa_init_tracking_state",
            function=function,
            context=context,
            pp_image=pp_image,
            shape=shape,
        )

    def track(self, function: Any, context: Any, pp_image: Any, state: Any) -> Any:
        """Where a tracking function finds the shape of ``state`` now (``cvat_aa_track``)."""
        return self._call(
            "cvat_aa_track", function=function, context=context, pp_image=pp_image, state=state
        )

    def _call(self, name: str, **kwargs: Any) -> Any:
        caller = getattr(self.pm.hook, name)
        if _only_core(caller) and os.environ.get(TRACE_ENV) != "1":
            # As for detection: with no hook plugin taking part, pluggy has nothing to add.
            return getattr(_CORE, name)(**kwargs)
        return caller(**kwargs)

    def run_options(self) -> list[RunOption]:
        """The run options the hook plugins declare (``cvat_aa_run_options``), each with the
        plugin that declared it. A name cvat-aa or an earlier plugin has, and every option of
        a plugin whose implementation fails, is left out with a warning."""
        from .pipeline.options import RunOptions  # it uses this module

        taken = set(RESERVED_RUN_OPTION_NAMES) | {f.name for f in attrs.fields(RunOptions)}
        declared: list[RunOption] = []
        for impl in reversed(self.pm.hook.cvat_aa_run_options.get_hookimpls()):
            try:
                options = list(impl.function())
                if not all(isinstance(option, RunOption) for option in options):
                    raise TypeError("cvat_aa_run_options returned something else than RunOptions")
            except KeyboardInterrupt:
                raise
            except BaseException as ex:  # a broken hook plugin must not break every run
                logger.warning(
                    "hook plugin %r failed to declare its run options, which are left out: %s",
                    impl.plugin_name,
                    describe_exception(ex),
                )
                continue
            for option in options:
                if option.name in taken or not option.name.isidentifier():
                    logger.warning(
                        "hook plugin %r declares the run option %r, which %s; it is left out",
                        impl.plugin_name,
                        option.name,
                        "is taken" if option.name in taken else "is no Python name",
                    )
                    continue
                taken.add(option.name)
                declared.append(attrs.evolve(option, plugin=impl.plugin_name))
        return declared

    def result_stages(self, run: StageRun) -> StageChain:
        """The result stages the hook plugins take part in ``run`` with
        (``cvat_aa_result_stage``), in their registration order."""
        stages = []
        # pluggy lists implementations in registration order (and calls them the other way).
        for impl in self.pm.hook.cvat_aa_result_stage.get_hookimpls():
            try:
                stage = impl.function(run=run)
            except (Exception, KeyboardInterrupt):
                raise
            except BaseException as ex:
                raise BadFunctionError(
                    f"hook plugin {impl.plugin_name!r} raised {describe_exception(ex)} in"
                    " cvat_aa_result_stage; uninstall it, or disable it with"
                    f" {DISABLE_ENV}={impl.plugin_name}"
                ) from ex
            if stage is not None:
                stages.append((impl.plugin_name, stage))
        return StageChain(stages)

    def option_values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared run option's value: ``given`` (converted values by name) where it
        has one, the default elsewhere."""
        return {o.name: given.get(o.name, o.default) for o in self.run_options()}

    def wrap_function(self, function: Any, given: Mapping[str, Any]) -> Any:
        """``function`` as the hook plugins wrap it for a run whose plugin options are
        ``given`` (``cvat_aa_wrap_function``); ``function`` itself when none does."""
        impls = self.pm.hook.cvat_aa_wrap_function.get_hookimpls()
        if not impls:
            return function
        try:
            kind = function_kind(self.spec(function))
        except BadFunctionError:
            # Left as it is: the run reports the broken spec where it asks for it.
            return function
        if kind != "detection":
            return function
        values = self.option_values(given)
        for impl in impls:
            try:
                wrapped = impl.function(function=function, options=values)
            except (Exception, KeyboardInterrupt):
                raise
            except BaseException as ex:
                raise BadFunctionError(
                    f"hook plugin {impl.plugin_name!r} raised {describe_exception(ex)} in"
                    " cvat_aa_wrap_function; uninstall it, or disable it with"
                    f" {DISABLE_ENV}={impl.plugin_name}"
                ) from ex
            if wrapped is not None:
                function = check_function(wrapped, name=f"{impl.plugin_name}'s wrapper")
        return function

    def run_started(self, run: Mapping[str, Any]) -> None:
        self._observe("cvat_aa_run_started", run=run)

    def frames_done(self, frames: Sequence[int], annotations: int) -> None:
        self._observe("cvat_aa_frames_done", frames=frames, annotations=annotations)

    def run_finished(self, summary: Mapping[str, Any]) -> None:
        self._observe("cvat_aa_run_finished", summary=summary)

    def _observe(self, name: str, **kwargs: Any) -> None:
        caller = getattr(self.pm.hook, name)
        try:
            caller(**kwargs)
        except (Exception, KeyboardInterrupt):
            raise
        except BaseException as ex:
            plugin = _raised_by(caller, ex)
            raise BadFunctionError(
                f"hook plugin {plugin!r} raised {describe_exception(ex)} in {name};"
                f" uninstall it, or disable it with {DISABLE_ENV}={plugin}"
            ) from ex


def _raised_by(caller: pluggy.HookCaller, ex: BaseException) -> str:
    """The name of the plugin whose implementation of the hook ``ex`` came through."""
    codes = set()
    tb = ex.__traceback__
    while tb is not None:
        codes.add(tb.tb_frame.f_code)
        tb = tb.tb_next
    for impl in caller.get_hookimpls():
        if getattr(impl.function, "__code__", None) in codes:
            return impl.plugin_name
    return "unknown"


RESERVED_RUN_OPTION_NAMES = frozenset(
    {"function", "client", "task_id", "job_id", "task_ids", "project_id", "paths", "options"}
)
"""Names a hook plugin's run option cannot have, beside those of ``RunOptions``: the
arguments of cvat-aa's entry points."""


def hooks() -> Hooks:
    """The typed façade over the process-wide plugin manager."""
    return Hooks(get_plugin_manager())


# --- functions -------------------------------------------------------------------------------


def _is_function(obj: Any) -> bool:
    """Whether ``obj`` is a function of some kind: ``spec`` and ``detect`` (detection,
    interaction), or ``spec``, ``init_tracking_state`` and ``track`` (tracking)."""
    if isinstance(obj, type) or not hasattr(obj, "spec"):
        return False
    if callable(getattr(obj, "detect", None)):
        return True
    return callable(getattr(obj, "init_tracking_state", None)) and callable(
        getattr(obj, "track", None)
    )


_WHAT_A_FUNCTION_HAS = (
    "a function needs a 'spec' and a 'detect' method (detection and interaction functions),"
    " or a 'spec' and 'init_tracking_state' and 'track' methods (tracking functions)"
)


def _factory_of(obj: Any) -> Callable[..., Any] | None:
    """The factory an entry-point object stands for, or None if it is a function itself."""
    if _is_function(obj):
        return None
    create = getattr(obj, "create", None)
    if callable(create):
        return create
    if callable(obj) and not isinstance(obj, types.ModuleType):
        return obj
    raise BadFunctionError(
        f"{obj!r} is not a function: {_WHAT_A_FUNCTION_HAS}; or a 'create(**params)' factory"
        " must return one"
    )


def _summary_of(obj: Any, factory: Callable[..., Any] | None) -> str | None:
    for candidate in (obj, factory):
        doc = getattr(candidate, "__doc__", None)
        if doc and not isinstance(candidate, (str, int)):
            first = doc.strip().splitlines()[0].strip()
            if first:
                return first
    return None


def check_function(function: Any, *, name: str) -> Any:
    """Check that ``function`` follows the protocol; return it."""
    if not _is_function(function):
        missing = (
            "no 'spec' attribute"
            if not hasattr(function, "spec")
            else "no 'detect' method, nor 'init_tracking_state' and 'track' methods"
        )
        raise BadFunctionError(
            f"function {name!r} has {missing}; {_WHAT_A_FUNCTION_HAS} (see the plugin author guide)"
        )
    return function


def _checking(name: str) -> str:
    return f"reading 'spec' and 'detect' of function {name!r}"


# The protocols a factory's return annotation may name, by kind.
_PROTOCOL_KINDS: dict[Any, FunctionKind] = {
    sdk_aa.DetectionFunction: "detection",
    sdk_aa.InteractionFunction: "interaction",
    sdk_aa.TrackingFunction: "tracking",
    interface.DetectionFunction: "detection",
    interface.BatchDetectionFunction: "detection",
}


def _kind_of_class(cls: Any) -> FunctionKind | None:
    """The kind of the functions ``cls`` makes, as far as it says without being built."""
    cls = typing.get_origin(cls) or cls
    if not isinstance(cls, type):
        return None
    for base in cls.__mro__:
        if base in _PROTOCOL_KINDS:
            return _PROTOCOL_KINDS[base]
    spec = inspect.getattr_static(cls, "spec", None)
    if isinstance(spec, SPEC_TYPES):
        return function_kind(spec)
    if isinstance(spec, property) and spec.fget is not None:
        annotation = typing.get_type_hints(spec.fget).get("return")
    elif isinstance(spec, functools.cached_property):
        annotation = typing.get_type_hints(spec.func).get("return")
    else:
        annotation = typing.get_type_hints(cls).get("spec")
    return kind_of_spec_type(typing.get_origin(annotation) or annotation)


def _kind_of(obj: Any, factory: Callable[..., Any] | None) -> FunctionKind | None:
    """The kind of the function an entry point names, without building it: from the object's
    spec, or from what its factory is annotated to return; None when that says nothing."""
    try:
        if factory is None:
            return function_kind(obj)
        if isinstance(factory, type):
            return _kind_of_class(factory)
        return _kind_of_class(typing.get_type_hints(factory).get("return"))
    except KeyboardInterrupt:
        raise
    except BaseException:  # an annotation that does not resolve says nothing: "unknown"
        logger.debug("cannot tell the kind of %r without building it", obj, exc_info=True)
        return None


def kind_before_building(obj: Any) -> FunctionKind | None:
    """The kind of the function an entry-point object, module or file module stands for, as
    far as it says without being built (what ``functions list`` shows); None when it does not
    say, or is no function at all."""
    try:
        factory = _factory_of(obj)
    except BadFunctionError:
        return None
    return _kind_of(obj, factory)


def check_parameters(obj: Any, params: Mapping[str, Any], *, name: str) -> None:
    """Raise ``FunctionParameterError`` if ``params`` do not fit what ``obj`` (an entry-point
    object, module or file module) accepts, without building the function."""
    factory = _factory_of(obj)
    if factory is None:
        if params:
            raise FunctionParameterError(
                f"function {name!r} takes no parameters, got {', '.join(sorted(params))}"
            )
        return
    check_factory_parameters(factory, params, function_name=name)


def instantiate(obj: Any, params: Mapping[str, Any], *, name: str) -> Any:
    """Turn an entry-point object, module or file module into a function, given parameters."""
    check_parameters(obj, params, name=name)
    factory = _factory_of(obj)
    if factory is None:
        return _plugin_code(_checking(name), lambda: check_function(obj, name=name))
    try:
        function = _plugin_code(f"the factory of function {name!r}", lambda: factory(**params))
    except (FunctionParameterError, BadFunctionError):
        raise
    except (TypeError, ValueError, LookupError) as ex:
        # Factories report bad values (an unknown model name, say) with these.
        raise FunctionParameterError(f"function {name!r}: {ex}") from ex
    return _plugin_code(_checking(name), lambda: check_function(function, name=name))


@attrs.define
class FunctionEntry:
    """One function found through the ``cvat_aa.functions`` entry-point group."""

    name: str
    distribution: str | None
    version: str | None
    entry_point: importlib_metadata.EntryPoint | None = attrs.field(repr=False, default=None)
    summary: str | None = None
    error: str | None = None
    kind: FunctionKind | None = None
    """``"detection"``, ``"interaction"`` or ``"tracking"``; None until the function is
    built when only its factory is known and its return annotation does not say."""
    _object: Any = attrs.field(repr=False, default=None, alias="object")

    @property
    def status(self) -> str:
        return "broken" if self.error else "ok"

    def describe(self) -> str:
        where = f"{self.distribution} {self.version}" if self.distribution else "no distribution"
        return f"{self.name!r} (from {where})"

    def load_object(self) -> Any:
        """Import the entry point's object; raise BadFunctionError naming the plugin if broken."""
        if self.error:
            raise BadFunctionError(f"plugin {self.describe()} is broken: {self.error}")
        return self._object

    def load(self, **params: Any) -> Any:
        return instantiate(self.load_object(), params, name=self.name)


def _load_entry(ep: importlib_metadata.EntryPoint) -> FunctionEntry:
    dist, version = _describe_dist(ep)
    entry = FunctionEntry(ep.name, dist, version, ep)
    try:
        obj = ep.load()
        factory = _factory_of(obj)
    except KeyboardInterrupt:
        raise
    except BaseException as ex:  # a broken plugin is reported, not fatal (nor the exit code)
        entry.error = describe_exception(ex)
        logger.debug("function plugin %s failed to load", entry.describe(), exc_info=True)
        return entry
    entry._object = obj
    entry.kind = _kind_of(obj, factory)
    entry.summary = _summary_of(obj, factory)
    if not entry.summary and ep.dist is not None:
        entry.summary = ep.dist.metadata.get("Summary")
    return entry


def discover_functions(names: Iterable[str] | None = None) -> list[FunctionEntry]:
    """Find (and import) the installed function plugins, each on its own.

    Broken plugins come back with ``error`` set instead of raising. With ``names``, only
    those entry points are imported.
    """
    wanted = None if names is None else set(names)
    entries: dict[str, FunctionEntry] = {}
    for ep in _entry_points(FUNCTIONS_GROUP):
        if not is_enabled(ep.name) or (wanted is not None and ep.name not in wanted):
            continue
        if ep.name in entries:
            first = entries[ep.name]
            dist, version = _describe_dist(ep)
            first.error = (
                f"the name is registered twice: by {first.distribution} and by {dist} {version};"
                " uninstall one of them"
            )
            continue
        entries[ep.name] = _load_entry(ep)
    return list(entries.values())


def find_function(name: str) -> FunctionEntry:
    """The installed function plugin called ``name``."""
    found = discover_functions([name])
    if found:
        return found[0]
    installed = sorted(ep.name for ep in _entry_points(FUNCTIONS_GROUP) if is_enabled(ep.name))
    hint = (
        f"installed: {', '.join(installed)}" if installed else "no function plugins are installed"
    )
    if name in {ep.name for ep in _entry_points(FUNCTIONS_GROUP)}:
        hint = f"it is disabled by {LOAD_ENV}/{DISABLE_ENV}"
    raise UnknownFunctionError(
        f"no function named {name!r} ({hint}). Run 'cvat-aa functions list' to see them,"
        " or pass --function-module/--function-file"
    )


def import_function_module(module_name: str) -> Any:
    """Import a module to use as a function (``--function-module``)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as ex:
        if ex.name and module_name.startswith(ex.name):
            raise UnknownFunctionError(f"no module named {module_name!r} can be imported") from ex
        raise BadFunctionError(
            f"module {module_name!r} failed to import: {describe_exception(ex)}"
        ) from ex
    except KeyboardInterrupt:
        raise
    except BaseException as ex:
        raise BadFunctionError(
            f"module {module_name!r} failed to import: {describe_exception(ex)}"
        ) from ex


def import_function_file(path: str | os.PathLike[str]) -> Any:
    """Execute a Python file to use as a function (``--function-file``)."""
    path = Path(path)
    if not path.is_file():
        raise UnknownFunctionError(f"function file {str(path)!r} does not exist")
    # The same name in every process (Ray actors too), so that what pickles by reference to
    # the file's module (an exception class it defines, say) unpickles in the others.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    module_name = f"__cvat_aa_function_{digest}__"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BadFunctionError(f"{str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered so that pickling and dataclasses inside the file work.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as ex:
        del sys.modules[module_name]
        if isinstance(ex, KeyboardInterrupt):
            raise
        raise BadFunctionError(
            f"function file {str(path)!r} failed to run: {describe_exception(ex)}"
        ) from ex
    return module


def resolve_function_source(
    source: Any = None,
    /,
    *,
    function_module: str | None = None,
    function_file: str | os.PathLike[str] | None = None,
) -> tuple[Any, str]:
    """Find the object a function source names, before any parameters are applied.

    Returns the object (a function, a module, or a factory) and a name for messages.
    """
    given = [x for x in (source, function_module, function_file) if x is not None]
    if len(given) != 1:
        raise TypeError("give exactly one of a source, function_module or function_file")
    if function_module is not None:
        return import_function_module(function_module), function_module
    if function_file is not None:
        return import_function_file(function_file), str(function_file)
    if not isinstance(source, (str, os.PathLike)):
        return source, getattr(source, "__name__", None) or type(source).__name__
    text = os.fspath(source)
    if text.endswith(".py") or os.sep in text:
        return import_function_file(text), text
    if text in {ep.name for ep in _entry_points(FUNCTIONS_GROUP)}:
        return find_function(text).load_object(), text
    try:
        return import_function_module(text), text
    except UnknownFunctionError:
        find_function(text)  # raises with the list of installed functions
        raise


def function_parameters(obj: Any) -> list[dict[str, Any]]:
    """The parameters that the factory behind ``obj`` accepts (none for a plain function)."""
    factory = _factory_of(obj)
    return [] if factory is None else describe_factory_parameters(factory)


def load_function(
    source: Any = None,
    /,
    *,
    function_module: str | None = None,
    function_file: str | os.PathLike[str] | None = None,
    **params: Any,
) -> Any:
    """Load a function in one call, as ``cvat-aa annotate`` does.

    ``source`` is an installed plugin's name, a module name, a path to a ``.py`` file, or a
    function object (returned as is, or its ``create`` called with ``params``). Keyword
    ``params`` go to the function's factory. Raises ``UnknownFunctionError``,
    ``FunctionParameterError`` or ``BadFunctionError`` with a message that says what to do.
    """
    obj, name = resolve_function_source(
        source, function_module=function_module, function_file=function_file
    )
    return instantiate(obj, params, name=name)
