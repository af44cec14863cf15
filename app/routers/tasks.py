from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.deps import current_tenant, get_task_service
from app.schemas import (
    ErrorBody, ExamplesAppend, LabelScore, PredictIn, PredictionOut, PredictOut, TaskCreate, TaskList, TaskOut,
)
from app.services.tasks import TaskService

router = APIRouter(
    prefix="/v1/tasks",
    tags=["tasks"],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
Tenant = Annotated[str, Depends(current_tenant)]
Tasks = Annotated[TaskService, Depends(get_task_service)]


@router.post("", status_code=201, response_model=TaskOut, summary="Create a task; its adapter is ready on return")
def create_task(body: TaskCreate, tenant: Tenant, tasks: Tasks) -> TaskOut:
    view = tasks.create(tenant, body.name, [(e.text, e.label) for e in body.examples])
    return TaskOut(**asdict(view))


@router.get("", response_model=TaskList, summary="List this tenant's tasks")
def list_tasks(
    tenant: Tenant, tasks: Tasks, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0)] = 0
) -> TaskList:
    views, total = tasks.list(tenant, limit, offset)
    return TaskList(tasks=[TaskOut(**asdict(view)) for view in views], total=total)


@router.get("/{task_id}", response_model=TaskOut, summary="One task")
def get_task(task_id: str, tenant: Tenant, tasks: Tasks) -> TaskOut:
    return TaskOut(**asdict(tasks.get(tenant, task_id)))


@router.delete("/{task_id}", status_code=204, summary="Delete a task, its examples and adapters")
def delete_task(task_id: str, tenant: Tenant, tasks: Tasks) -> Response:
    tasks.delete(tenant, task_id)
    return Response(status_code=204)


@router.post("/{task_id}/examples", response_model=TaskOut, summary="Add examples (new labels allowed): a new version")
def append_examples(task_id: str, body: ExamplesAppend, tenant: Tenant, tasks: Tasks) -> TaskOut:
    view = tasks.append(tenant, task_id, [(e.text, e.label) for e in body.examples])
    return TaskOut(**asdict(view))


@router.post("/{task_id}/predict", response_model=PredictOut, summary="Classify texts with the task's adapter")
def predict(task_id: str, body: PredictIn, tenant: Tenant, tasks: Tasks) -> PredictOut:
    version, predictions = tasks.predict(tenant, task_id, body.texts, body.top_k)
    return PredictOut(
        version=version,
        predictions=[
            PredictionOut(
                label=p.label, score=p.score, top_k=[LabelScore(label=label, score=score) for label, score in p.top_k]
            )
            for p in predictions
        ],
    )
