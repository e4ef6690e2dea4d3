"""TorchServe's workflow APIs: ``/workflows`` on the management port (register a ``.war``, list, describe,
unregister) and ``/wfpredict/{workflow_name}`` on the inference port.

Bodies, status codes and messages are TorchServe's (``WorkflowMgmtRequestHandler``,
``WorkflowInferenceRequestHandler``, ``WorkflowManager``). Unlike ``/models``, ``/workflows`` does not need
``enable_model_api``, as in TorchServe. ``POST /workflows`` takes ``url``, ``workflow_name``, ``response_timeout`` and
``startup_timeout`` from the query, or from a JSON body when the request says ``Content-Type: application/json``.

``/wfpredict`` reads the request as ``/predictions`` does (a body, form fields or multipart parts) and runs the DAG
(:mod:`modelserver.workflow_dag`). With one leaf node, its answer is the body, as bytes, with ``Content-Type:
application/json`` whatever it holds; with several, a JSON object of each leaf's answer (which must be a JSON object)
by node name. A node that fails answers 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..api_docs import Param, Reply, handler_input, handler_output
from ..errors import ServeError
from ..http_messages import Request, Response
from ..router import ANY, Route
from ..workflows import RegisterWorkflowArgs, WorkflowManager
from . import torchserve_http as http
from .management_args import int_param, register_source, str_param
from .request_inputs import read_inputs

_TAGS = ("workflows",)
_NAME_DOC = {"workflow_name": "Name of the workflow."}


class _WorkflowDialect:
    def __init__(self, workflows: WorkflowManager) -> None:
        self.workflows = workflows

    def error_response(self, error: ServeError, request: Request) -> Response:
        return http.error_response(error, request)


class TorchServeWorkflowManagement(_WorkflowDialect):
    """``/workflows``: register, list, describe, unregister."""

    def routes(self) -> Iterable[Route]:
        yield Route(
            frozenset({"GET"}),
            "/workflows",
            self.list_workflows,
            summary="List registered workflows.",
            operation_id="listWorkflows",
            tags=_TAGS,
            parameters=(
                Param("limit", "Workflows per page (1 to 100); default 100.", type="integer"),
                Param("next_page_token", "Where the page starts: the nextPageToken of the previous page."),
            ),
            responses={200: Reply("OK", "WorkflowList")},
        )
        yield Route(
            frozenset({"POST"}),
            "/workflows",
            self.register,
            summary="Register a workflow from a .war in the workflow store, or a URL; every DAG node becomes a model "
            "named <workflow>__<node>.",
            operation_id="registerWorkflow",
            tags=_TAGS,
            parameters=(
                Param("url", "The .war: a file name in the workflow store, or an allowed URL.", required=True),
                Param("workflow_name", "The workflow's name; default: the manifest's workflowName."),
                Param("response_timeout", "Seconds each model may take to answer; default 120.", type="integer"),
                Param("startup_timeout", "Seconds each model's worker may take to load; default 120.", type="integer"),
            ),
            responses={
                200: Reply("Workflow registered", "Status"),
                400: "Bad request: no url, a failed download, or an invalid DAG",
                404: "The .war is not in the workflow store, or the URL is not allowed",
                409: "Workflow already registered",
                500: "Invalid workflow archive, or a model of the workflow failed to register",
            },
        )
        yield Route(
            frozenset({"GET"}),
            "/workflows/{workflow_name}",
            self.describe,
            summary="Describe a workflow.",
            operation_id="describeWorkflow",
            tags=_TAGS,
            param_docs=_NAME_DOC,
            responses={200: Reply("OK", "WorkflowDescriptions"), 404: "Workflow not found"},
        )
        yield Route(
            frozenset({"DELETE"}),
            "/workflows/{workflow_name}",
            self.unregister,
            summary="Unregister a workflow and its models.",
            operation_id="unregisterWorkflow",
            tags=_TAGS,
            param_docs=_NAME_DOC,
            responses={200: Reply("Workflow unregistered", "Status"), 404: "Workflow not found"},
        )

    async def list_workflows(self, request: Request, params: dict[str, str]) -> Response:
        """TorchServe's paging: ``nextPageToken`` whenever the page ends at or before the last name."""
        limit = int_param(request.query.get("limit"), 100)
        limit = 100 if limit < 0 or limit > 100 else limit
        start = max(0, int_param(request.query.get("next_page_token"), 0))
        names = self.workflows.names()
        last = start + limit
        body: dict[str, Any] = {}
        if last <= len(names):
            body["nextPageToken"] = str(last)
        page = names[start : min(last, len(names))]
        body["workflows"] = [{"workflowName": n, "workflowUrl": self.workflows.get(n).archive.url} for n in page]
        return http.json_response(body)

    async def describe(self, request: Request, params: dict[str, str]) -> Response:
        name = params["workflow_name"]
        workflow = self.workflows.get(name)
        settings = workflow.spec.settings
        body = {
            "workflowName": name,
            "workflowUrl": workflow.archive.url,
            "minWorkers": settings["min-workers"],
            "maxWorkers": settings["max-workers"],
            "batchSize": settings["batch-size"],
            "maxBatchDelay": settings["max-batch-delay"],
            "workflowDag": workflow.spec.dag_text,
        }
        return http.json_response([body])

    async def register(self, request: Request, params: dict[str, str]) -> Response:
        source = await register_source(request)
        args = RegisterWorkflowArgs(
            url=str_param(source.get("url")),
            workflow_name=str_param(source.get("workflow_name")),
            response_timeout=int_param(source.get("response_timeout"), 120),
            startup_timeout=int_param(source.get("startup_timeout"), 120),
        )
        name = await self.workflows.register(args)
        return http.json_response({"status": f"Workflow {name} has been registered and scaled successfully."})

    async def unregister(self, request: Request, params: dict[str, str]) -> Response:
        name = params["workflow_name"]
        await self.workflows.unregister(name)
        return http.json_response({"status": f'Workflow "{name}" unregistered'})


class TorchServeWorkflowInference(_WorkflowDialect):
    """``/wfpredict/{workflow_name}``: any method, as TorchServe; a further path is ignored, as TorchServe does."""

    def routes(self) -> Iterable[Route]:
        meta: dict[str, Any] = {
            "tags": ("inference",),
            "request_body": handler_input(required=True),
            "doc_methods": ("POST",),
            "param_docs": _NAME_DOC,
            "responses": {
                200: handler_output("The leaf node's answer, or a JSON object of each leaf's answer by node name."),
                404: "Workflow not found",
                500: "A node of the workflow failed",
            },
        }
        yield Route(
            ANY, "/wfpredict/{workflow_name}", self.predict, summary="Run a workflow.", operation_id="wfpredict", **meta
        )
        yield Route(
            ANY,
            "/wfpredict/{workflow_name}/{tail:path}",
            self.predict,
            summary="Run a workflow (the rest of the path is ignored).",
            operation_id="wfpredict_path",
            **meta,
        )

    async def predict(self, request: Request, params: dict[str, str]) -> Response:
        name = params["workflow_name"]
        self.workflows.get(name)  # 404 before the body is read
        inputs = await read_inputs(request)
        leaves = await self.workflows.predict(name, request.raw_headers, inputs, http.new_request_id)
        if len(leaves) == 1:
            headers = http.response_headers(http.new_request_id())
            headers["Content-Type"] = "application/json"
            return Response(200, headers, leaves[0][1])
        return http.json_response({node: _json_object(node, body) for node, body in leaves})


def _json_object(node: str, body: bytes) -> Any:
    """A leaf's answer in a several-leaf result: TorchServe parses each one as a JSON object (else a 500)."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise ServeError(f"Not a JSON Object: the answer of node {node}")
    return value
