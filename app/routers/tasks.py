"""Task endpoints: translate HTTP to TaskService calls and results to bodies."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response

from app.deps import current_tenant, get_task_service
from app.errors import InvalidInput
from app.schemas import (
    MAX_INT32, EvaluateIn, EvaluateOut, ExampleList, ExampleOut, ExamplesAppend, ExamplesRemove,
    LabelScore, PredictIn, PredictionOut, PredictOut, Rollback, TaskCreate, TaskDocument, TaskList, TaskOut,
    TaskUpdate, VersionList, VersionOut, error_responses,
)
from app.services.changes import Change
from app.services.tasks import UNSET, TaskService, TaskView, as_utc

router = APIRouter(
    prefix="/v1/tasks",
    tags=["tasks"],
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 503),
)
Tenant = Annotated[str, Depends(current_tenant)]
Tasks = Annotated[TaskService, Depends(get_task_service)]
PINNED = error_responses(412)
IF_MATCH_HELP = ('the version the change expects the task to be at, e.g. "3" (the ETag of GET /v1/tasks/{task_id}); '
                 "another current version is 412 and nothing changes. Without it, appends and removals are made "
                 "on whatever version is current. * matches any version")


def expected_version(if_match: Annotated[str | None, Header(alias="If-Match", description=IF_MATCH_HELP)] = None
                     ) -> int | None:
    """The version ``If-Match`` names: ``3``, ``"3"`` or ``W/"3"``; ``*`` (or no header) is None."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit() and 1 <= int(tag) <= MAX_INT32):
        raise InvalidInput(f"If-Match must be one task version such as \"3\" (or *), not {if_match[:40]!r}")
    return int(tag)


Expected = Annotated[int | None, Depends(expected_version)]


def _tagged(view: TaskView, response: Response) -> TaskOut:
    """The task as a body, with its version as the ETag that ``If-Match`` takes back."""
    out = TaskOut(**asdict(view))
    response.headers["ETag"] = f'"{out.version}"'
    return out


def _change(body: TaskCreate | TaskDocument | ExamplesAppend) -> Change:
    return Change(
        examples=[(e.text, e.label) for e in body.examples],
        labels={label.name: label.description for label in body.labels} if body.labels else None,
        out_of_scope=list(body.out_of_scope),
        unlabelled=list(body.unlabelled),
    )


@router.post("", status_code=201, response_model=TaskOut, summary="Create a task; its adapter is ready on return")
def create_task(body: TaskCreate, tenant: Tenant, tasks: Tasks) -> TaskOut:
    view = tasks.create(tenant, body.name, _change(body), body.oos_threshold)
    return TaskOut(**asdict(view))


@router.post("/import", status_code=201, response_model=TaskOut, summary="Create a task from an exported document")
def import_task(body: TaskDocument, tenant: Tenant, tasks: Tasks) -> TaskOut:
    change = _change(body)
    view = tasks.create(tenant, body.name, change, body.settings.oos_threshold, whole_task=True)
    return TaskOut(**asdict(view))


@router.get("", response_model=TaskList, summary="List this tenant's tasks")
def list_tasks(
    tenant: Tenant, tasks: Tasks, limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0
) -> TaskList:
    views, total = tasks.list(tenant, limit, offset)
    return TaskList(tasks=[TaskOut(**asdict(view)) for view in views], total=total)


@router.get("/{task_id}", response_model=TaskOut, summary="One task (its current version; ETag: the version)")
def get_task(task_id: str, tenant: Tenant, tasks: Tasks, response: Response) -> TaskOut:
    return _tagged(tasks.get(tenant, task_id), response)


@router.patch("/{task_id}", response_model=TaskOut, responses=PINNED,
              summary="Rename, or set/clear the out-of-scope threshold override")
def update_task(task_id: str, body: TaskUpdate, tenant: Tenant, tasks: Tasks, expected: Expected,
                response: Response) -> TaskOut:
    threshold = body.oos_threshold if "oos_threshold" in body.model_fields_set else UNSET
    return _tagged(tasks.update(tenant, task_id, body.name, threshold, expected=expected), response)


@router.delete("/{task_id}", status_code=204, responses=PINNED, summary="Delete a task, its examples and versions")
def delete_task(task_id: str, tenant: Tenant, tasks: Tasks, expected: Expected) -> Response:
    tasks.delete(tenant, task_id, expected=expected)
    return Response(status_code=204)


@router.post("/{task_id}/examples", response_model=TaskOut, responses=PINNED,
             summary="Add examples, labels, out-of-scope or unlabelled texts: a new version, adapted from the current one")
def append_examples(task_id: str, body: ExamplesAppend, tenant: Tenant, tasks: Tasks, expected: Expected,
                    response: Response) -> TaskOut:
    return _tagged(tasks.append(tenant, task_id, _change(body), expected=expected), response)


@router.get("/{task_id}/examples", response_model=ExampleList, summary="The examples of a version, with their ids")
def list_examples(task_id: str, tenant: Tenant, tasks: Tasks,
                  version: Annotated[int | None, Query(ge=1, le=MAX_INT32)] = None) -> ExampleList:
    number, content = tasks.content(tenant, task_id, version)
    examples = [ExampleOut(id=r.number, text=r.text, label=r.label if r.kind == "labelled" else None, kind=r.kind)
                for r in content.examples]
    descriptions = {k: v for k, v in content.label_descriptions.items() if v}
    return ExampleList(version=number, examples=examples, label_descriptions=descriptions)


@router.post("/{task_id}/remove", response_model=TaskOut, responses=PINNED,
             summary="Remove examples or whole labels: a new version")
def remove_examples(task_id: str, body: ExamplesRemove, tenant: Tenant, tasks: Tasks, expected: Expected,
                    response: Response) -> TaskOut:
    view = tasks.remove(tenant, task_id, body.example_ids, body.labels, body.unlabelled, expected=expected)
    return _tagged(view, response)


@router.get("/{task_id}/versions", response_model=VersionList, summary="All versions of a task")
def list_versions(task_id: str, tenant: Tenant, tasks: Tasks) -> VersionList:
    current, rows = tasks.versions(tenant, task_id)
    return VersionList(current=current, versions=[
        VersionOut(version=r.version, change=r.change, parent_version=r.parent_version, labels=list(r.labels),
                   num_examples=r.num_examples, adapted_ms=round(r.adapted_ms, 3), created_at=as_utc(r.created_at))
        for r in rows
    ])


@router.post("/{task_id}/rollback", response_model=TaskOut, responses=PINNED,
             summary="Make a new version with the content of an earlier one")
def rollback(task_id: str, body: Rollback, tenant: Tenant, tasks: Tasks, expected: Expected,
             response: Response) -> TaskOut:
    return _tagged(tasks.rollback(tenant, task_id, body.version, expected=expected), response)


@router.post("/{task_id}/predict", response_model=PredictOut, summary="Classify texts with the task's adapter")
def predict(task_id: str, body: PredictIn, tenant: Tenant, tasks: Tasks) -> PredictOut:
    version, predictions = tasks.predict(tenant, task_id, body.texts, body.top_k, body.version)
    return PredictOut(
        version=version,
        predictions=[
            PredictionOut(
                label=p.label, score=p.score, top_k=[LabelScore(label=label, score=score) for label, score in p.top_k],
                out_of_scope=p.out_of_scope, ambiguous=p.ambiguous, in_scope_score=p.in_scope_score,
            )
            for p in predictions
        ],
    )


@router.post("/{task_id}/evaluate", response_model=EvaluateOut,
             summary="Accuracy, macro-F1, per-label precision/recall, confusions, out-of-scope precision/recall")
def evaluate(task_id: str, body: EvaluateIn, tenant: Tenant, tasks: Tasks) -> EvaluateOut:
    version, report = tasks.evaluate(tenant, task_id, [(e.text, e.label) for e in body.examples], body.version)
    return EvaluateOut(version=version, report=report)


@router.get("/{task_id}/export", response_model=TaskDocument, summary="The task as one JSON document")
def export_task(task_id: str, tenant: Tenant, tasks: Tasks,
                version: Annotated[int | None, Query(ge=1, le=MAX_INT32)] = None) -> TaskDocument:
    return TaskDocument(**tasks.export(tenant, task_id, version))
