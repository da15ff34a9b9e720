"""One transaction's view of the whole database: every table's methods on one object.

The schema is every table module's, in an order where each table comes after the tables it
refers to.
"""

from __future__ import annotations

from . import (
    annotations,
    background_requests,
    frames,
    jobs,
    labels,
    organizations,
    projects,
    tasks,
    uploads,
    users,
)
from .annotations import Annotations
from .background_requests import BackgroundRequests
from .frames import Frames
from .jobs import Jobs
from .labels import Labels
from .organizations import Organizations
from .projects import Projects
from .tasks import Tasks
from .uploads import Uploads
from .users import Users

SCHEMA = "".join(
    module.SCHEMA
    for module in (
        users,
        organizations,
        projects,
        tasks,
        labels,
        frames,
        jobs,
        uploads,
        background_requests,
        annotations,
    )
)


class Transaction(
    Users,
    Organizations,
    Projects,
    Tasks,
    Labels,
    Frames,
    Jobs,
    Uploads,
    BackgroundRequests,
    Annotations,
):
    """Data access within one transaction. Rows come back as plain dicts."""
