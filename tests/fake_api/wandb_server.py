"""A local stand-in of W&B's GraphQL endpoint (``POST /graphql``), enough for ``wandb.Api()`` and
``wandb_workspaces`` to save a Report: it answers the operations the library sends (read from its source:
``Viewer``, ``GetProjects``, ``CreateProject`` (upsertModel), ``ProjectInternalId``, ``upsertView``) the way
the service does, records every request, and refuses any other operation with a GraphQL error (so a new
query the library starts sending fails the test instead of passing silently)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_api.common import ThreadedServer


@dataclass
class Recorded:
    operation: str
    variables: dict[str, Any]
    authorization: str  # the Authorization header as sent
    api_key: str | None  # the key in it (Basic api:<key>)


@dataclass
class FakeWandb:
    entity: str = "lab-team"
    requests: list[Recorded] = field(default_factory=list)
    projects: dict[str, str] = field(default_factory=dict)  # name -> internal id
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # view id -> what upsertView stored

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/graphql", self.graphql)
        return app

    @staticmethod
    def _operation(query: str) -> str:
        """The operation, by the root field the document asks for (clients name them or not)."""
        for root, op in (("upsertView(", "upsertView"), ("upsertModel(", "CreateProject"),
                          ("ProjectInternalId", "ProjectInternalId"), ("models(", "GetProjects"),
                          ("viewer", "Viewer")):
            if root in query:
                return op
        return "?"

    async def graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        query, variables = body.get("query", ""), body.get("variables") or {}
        op = self._operation(query)
        auth = request.headers.get("Authorization", "")
        key = None
        if auth.startswith("Basic "):
            key = base64.b64decode(auth[6:]).decode().partition(":")[2]
        self.requests.append(Recorded(op, variables, auth, key))
        if not key:
            return web.json_response({"errors": [{"message": "permission denied"}]}, status=401)
        if op == "Viewer":
            return web.json_response({"data": {"viewer": {
                "id": "VXNlcjox", "entity": self.entity, "username": "lab-user", "email": None, "flags": "{}",
                "teams": {"edges": [{"node": {"name": self.entity}}]}}}})
        if op == "GetProjects":
            edges = [{"node": self._project(n)} for n in self.projects]
            return web.json_response({"data": {"models": {
                "pageInfo": {"endCursor": None, "hasNextPage": False}, "edges": edges}}})
        if op == "CreateProject":
            name = variables["input"]["name"]
            self.projects.setdefault(name, f"internal-{len(self.projects) + 1}")
            node = self._project(name)
            return web.json_response({"data": {"result": {"project": node, "model": node, "inserted": True}}})
        if op == "ProjectInternalId":
            name = variables["projectName"]
            if name not in self.projects or variables["entityName"] != self.entity:
                return web.json_response({"data": {"project": None}})
            return web.json_response({"data": {"project": {"id": f"UHJvamVjdDo{name}",
                                                           "internalId": self.projects[name]}}})
        if op == "upsertView":
            if variables.get("entityName") != self.entity or variables.get("projectName") not in self.projects:
                return web.json_response({"errors": [{"message": "project not found"}]})
            spec = json.loads(variables["spec"])  # the service stores the spec as a JSON string
            view_id = variables.get("id") or f"Vmlldzo{len(self.views) + 1}"
            self.views[view_id] = {**variables, "spec": spec}
            return web.json_response({"data": {"upsertView": {"view": {
                "id": view_id, "type": variables["type"], "name": variables["name"],
                "displayName": variables["displayName"], "description": variables["description"],
                "project": {"id": "UHJvamVjdDox", "name": variables["projectName"],
                            "entityName": variables["entityName"]},
                "spec": variables["spec"], "updatedAt": "2026-12-03T08:00:00"}, "inserted": True}}})
        return web.json_response({"errors": [{"message": f"the stand-in does not answer {op!r}"}]}, status=400)

    def _project(self, name: str) -> dict[str, Any]:
        """A project as wandb's ProjectFragment / UserFragment read it (wandb/apis/_generated/operations.py)."""
        user = {"id": "VXNlcjox", "name": "Lab User", "username": "lab-user", "email": None, "admin": False,
                "flags": None, "entity": self.entity, "deletedAt": None, "apiKeys": None,
                "teams": {"edges": [{"node": {"name": self.entity}}]}}
        return {"__typename": "Project", "id": f"UHJvamVjdDo{name}", "name": name, "entityName": self.entity,
                "createdAt": "2026-12-03T08:00:00", "isBenchmark": False, "user": user}

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests]


def start(fake: FakeWandb) -> ThreadedServer:
    return ThreadedServer(fake.app()).start()
