"""Request and response bodies of the public HTTP API (pydantic v2)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

NonEmpty = Field(min_length=1)


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found, limit_exceeded")
    detail: object = Field(description="what went wrong, for people")


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class TenantCreated(BaseModel):
    id: str
    name: str
    api_key: str = Field(description="shown once; only its hash is stored")


class ExampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, description="the utterance (limit: FEWSHOT_MAX_TEXT_CHARS)")
    label: str = Field(min_length=1, description="its intent label (limit: FEWSHOT_MAX_LABEL_CHARS)")


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    examples: list[ExampleIn] = Field(min_length=2, description="at least two labels, one example each")


class ExamplesAppend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    examples: list[ExampleIn] = Field(min_length=1)


class TaskOut(BaseModel):
    id: str
    name: str
    version: int
    labels: list[str]
    num_examples: int
    adapted_ms: float = Field(description="server-side time to embed the support set and adapt, ms")
    created_at: datetime
    updated_at: datetime


class TaskList(BaseModel):
    tasks: list[TaskOut]
    total: int


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1)
    top_k: int = Field(3, ge=1)


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="probability")


class PredictionOut(BaseModel):
    label: str
    score: float
    top_k: list[LabelScore]


class PredictOut(BaseModel):
    version: int
    predictions: list[PredictionOut]
