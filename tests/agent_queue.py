"""How the agent tests act as CVAT's users: native functions and their requests.

:class:`Queues` drives a native function's queue on cvat-aa's test server through cvat-sdk's
client, with the paths of CVAT Online's ``/api/functions`` API (see
``cvat_aa_testing.native_functions``): submit a whole-task request, run a single-frame request,
a click or a tracked frame (each waits for an agent's answer), read and cancel requests,
delete a function.
"""

from __future__ import annotations

import json
from typing import Any


class Queues:
    """What a CVAT user does with native functions, through ``client``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _call(self, path: str, method: str, **kw: Any) -> Any:
        _, response = self.client.api_client.call_api(path, method, _parse_response=False, **kw)
        return json.loads(response.data) if response.data else None

    def function(self, function_id: int) -> dict[str, Any]:
        return self._call(f"/api/functions/{function_id}", "GET")

    def delete(self, function_id: int) -> None:
        self._call(f"/api/functions/{function_id}", "DELETE")

    def submit_task(self, function_id: int, task: int, **params: Any) -> str:
        body = {"function": function_id, "task": task, "type": "annotate_task", **params}
        return self._call("/api/functions/requests/", "POST", body=body)["id"]

    def request(self, ar_id: str) -> dict[str, Any]:
        return self._call(f"/api/functions/requests/{ar_id}", "GET")

    def cancel(self, ar_id: str) -> None:
        self._call(f"/api/functions/requests/{ar_id}", "DELETE")

    def run_frame(self, function_id: int, task: int, frame: int, **params: Any) -> Any:
        """A single-frame request; blocks until an agent answers (run it in a thread)."""
        body = {"type": "annotate_frame", "task": task, "frame": frame, **params}
        return self._call(f"/api/functions/{function_id}/run", "POST", body=body)

    def run(self, function_id: int, body: dict[str, Any]) -> Any:
        """An interactive request of any type ("interact", "init_tracking", "track"...);
        blocks until an agent answers (run it in a thread)."""
        return self._call(f"/api/functions/{function_id}/run", "POST", body=body)
