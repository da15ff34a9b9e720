"""Agents: serving a function to CVAT Online/Enterprise from this machine.

CVAT Online and Enterprise run no user models; instead a user registers a *native function*
(its name and labels) and runs an *agent* that takes the function's requests from CVAT's
queue, computes them here and sends back the results. ``queue`` speaks the protocol,
``native`` says what a native function is for each kind of function (detector, interactor,
tracker) and whether it fits the agent's function, ``requests`` computes a detector's
results through cvat-aa's pipeline, ``interactive`` an interactor's and a tracker's, and
``agent`` is the loop. ``cvat-aa agent`` is the command line (``cli/agent.py``); ``cvat-aa serve`` is the
counterpart for a self-hosted CVAT, which calls cvat-aa as it would call Nuclio.
"""

from .agent import Agent, AgentSummary, Runner, failure_message, runner_for
from .interactive import InteractionRunner, TrackingRunner
from .native import IncompatibleFunctionError, check_compatible, labels_v2, native_fields
from .queue import (
    FunctionQueue,
    RequestLostError,
    create_native_function,
    delete_function,
    get_function,
    list_functions,
)
from .requests import RequestRunner, UnservableRequestError

__all__ = [
    "Agent",
    "AgentSummary",
    "FunctionQueue",
    "IncompatibleFunctionError",
    "InteractionRunner",
    "RequestLostError",
    "RequestRunner",
    "Runner",
    "TrackingRunner",
    "UnservableRequestError",
    "check_compatible",
    "create_native_function",
    "delete_function",
    "failure_message",
    "get_function",
    "labels_v2",
    "list_functions",
    "native_fields",
    "runner_for",
]
