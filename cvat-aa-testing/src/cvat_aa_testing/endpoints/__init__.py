"""CVAT's REST endpoints, one module per resource, and the table of every route.

=======================  ===================================================================
:mod:`.auth`             server information, login, logout, the current user
:mod:`.users`            registration, users and their groups
:mod:`.organizations`    organizations, memberships and invitations
:mod:`.projects`         projects
:mod:`.tasks`            tasks, and CVAT's ``filter`` on their list (:mod:`.filters`)
:mod:`.uploads`          attaching data: the upload protocol and its background request
:mod:`.data`             frames, chunks, previews and data meta of tasks and jobs
:mod:`.labels`           labels
:mod:`.jobs`             jobs
:mod:`.annotations`      annotations of tasks and jobs
:mod:`.lambda_manager`   functions (through Nuclio) and requests to annotate with them
:mod:`.functions`        native functions, their requests, and the queue agents serve them from
=======================  ===================================================================

Handlers are plain functions of a :class:`~.context.ServerContext`, the request and the
caller's identity; :mod:`.http` has what they share. The WSGI application that finds a route
and calls its handler is :mod:`cvat_aa_testing.app`.
"""

from . import (
    annotations,
    auth,
    data,
    functions,
    jobs,
    labels,
    lambda_manager,
    organizations,
    projects,
    tasks,
    uploads,
    users,
)
from .http import Route

ROUTES: list[Route] = [
    *auth.ROUTES,
    *users.ROUTES,
    *organizations.ROUTES,
    *projects.ROUTES,
    *tasks.ROUTES,
    *uploads.ROUTES,
    *data.ROUTES,
    *labels.ROUTES,
    *jobs.ROUTES,
    *annotations.ROUTES,
    *lambda_manager.ROUTES,
    *functions.ROUTES,
]

__all__ = ["ROUTES", "Route"]
