"""Request and response bodies of the public HTTP API (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_INT32 = 2**31 - 1  # versions and example ids are 32-bit columns in every database


def _storable(value: str) -> str:
    """Refuse what no database column can hold: NUL characters (PostgreSQL text) and
    lone UTF-16 surrogates (not encodable as UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it has a lone surrogate)") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain a character other than white space")
    return value


SafeStr = Annotated[str, AfterValidator(_storable)]
"""Any storable string (a text to classify may be empty)."""
Text = Annotated[str, Field(min_length=1), AfterValidator(_storable), AfterValidator(_not_blank)]
"""A stored text, label or name: storable and not blank."""
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_storable), AfterValidator(_not_blank)]
Version = Annotated[int, Field(ge=1, le=MAX_INT32)]
Threshold = Annotated[float, Field(allow_inf_nan=False)]
UNLABELLED_HELP = "texts without labels (e.g. past tickets); they refine the label prototypes, most useful with 0-2 examples per label"


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found, limit_exceeded")
    detail: object = Field(description="what went wrong, for people")


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the body could not be read: it is not JSON encoded as UTF-8 (invalid_body)",
    401: "no API key, or one that is not valid (WWW-Authenticate: Bearer)",
    403: "the call needs the admin key",
    404: "no such resource (or it belongs to another tenant)",
    409: "a concurrent change conflicts with this one (see the detail); retry",
    412: "If-Match names a version other than the task's current one",
    413: "the body or a value is over a limit (FEWSHOT_MAX_*)",
    422: "the body or a parameter is not valid (validation_error)",
    429: "the tenant's request rate is over its limit (Retry-After)",
    503: "overloaded, or the database does not answer (Retry-After)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for these error statuses, each with the ``{"error", "detail"}``
    body, so that every status an operation can answer is in the document."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


class HealthOut(BaseModel):
    status: Literal["ok", "starting", "database_unavailable"]
    encoder: str | None = Field(None, description="the encoder's fingerprint (when ok)")
    device: str | None = Field(None, description="where the encoder runs (when ok)")


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class TenantCreated(BaseModel):
    id: str
    name: str
    api_key: str = Field(description="shown once; only its hash is stored")


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    num_tasks: int


class TenantList(BaseModel):
    tenants: list[TenantOut]
    total: int


class ApiKeyOut(BaseModel):
    id: int = Field(description="the key's id, to revoke it")
    prefix: str = Field(description="the key's first 12 characters, to recognise it")
    created_at: datetime


class ApiKeyList(BaseModel):
    keys: list[ApiKeyOut]


class ApiKeyCreated(ApiKeyOut):
    api_key: str = Field(description="shown once; only its hash is stored")


class ExampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text = Field(description="the utterance (limit: FEWSHOT_MAX_TEXT_CHARS)")
    label: Text = Field(description="its intent label (limit: FEWSHOT_MAX_LABEL_CHARS)")


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(description="the label")
    description: SafeStr | None = Field(None, description="what it means; used as a zero-shot prototype (default: the name)")


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    examples: list[ExampleIn] = Field(default_factory=list, description="labelled examples")
    labels: list[LabelIn] = Field(default_factory=list, description="declared labels; may have no examples (zero-shot)")
    out_of_scope: list[Text] = Field(default_factory=list, description="texts that belong to no label (negatives)")
    unlabelled: list[Text] = Field(default_factory=list, description=UNLABELLED_HELP)
    oos_threshold: Threshold | None = Field(None, description="override of the calibrated out-of-scope threshold")


class ExamplesAppend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    examples: list[ExampleIn] = Field(default_factory=list)
    labels: list[LabelIn] = Field(default_factory=list)
    out_of_scope: list[Text] = Field(default_factory=list)
    unlabelled: list[Text] = Field(default_factory=list, description=UNLABELLED_HELP)


class ExamplesRemove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    example_ids: list[Annotated[int, Field(ge=1, le=MAX_INT32)]] = Field(
        default_factory=list, description="ids from GET /v1/tasks/{id}/examples")
    labels: list[SafeStr] = Field(default_factory=list, description="labels to drop with all their examples")
    unlabelled: bool = Field(False, description="drop every unlabelled text")


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version = Field(description="the earlier version whose content becomes the new version")


class TaskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    oos_threshold: Threshold | None = Field(None, description="set the override; null clears it")


class TaskOut(BaseModel):
    id: str
    name: str
    version: int
    labels: list[str]
    label_descriptions: dict[str, str] = Field(description="declared labels that carry a description")
    num_examples: int = Field(description="in-scope examples in this version")
    num_out_of_scope: int = Field(description="out-of-scope (negative) examples in this version")
    num_unlabelled: int = Field(description="unlabelled texts in this version")
    adapted_ms: float = Field(description="server-side time to embed the new texts and adapt, ms")
    temperature: float = Field(description="per-task calibration temperature")
    oos_threshold: float | None = Field(description="in-scope score below which predict answers out of scope")
    oos_threshold_override: float | None
    created_at: datetime
    updated_at: datetime


class TaskList(BaseModel):
    tasks: list[TaskOut]
    total: int


class VersionOut(BaseModel):
    version: int
    change: str | None = Field(description="create, append, remove or rollback")
    parent_version: int | None
    labels: list[str]
    num_examples: int
    adapted_ms: float
    created_at: datetime


class VersionList(BaseModel):
    current: int
    versions: list[VersionOut]


class ExampleOut(BaseModel):
    id: int = Field(description="the example's number within its task (1, 2, ...), to remove it")
    text: str
    label: str | None = Field(description="null for an out-of-scope example or an unlabelled text")
    kind: Literal["labelled", "out_of_scope", "unlabelled"]


class ExampleList(BaseModel):
    version: int
    examples: list[ExampleOut]
    label_descriptions: dict[str, str]


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[SafeStr] = Field(min_length=1)
    top_k: int = Field(3, ge=1)
    version: Version | None = Field(None, description="pin a version (default: the current one)")


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="calibrated probability")


class PredictionOut(BaseModel):
    label: str | None = Field(description="the predicted label; null when out of scope")
    score: float = Field(description="calibrated probability of the best label")
    top_k: list[LabelScore]
    out_of_scope: bool
    ambiguous: bool = Field(description="the two best labels are too close to call")
    in_scope_score: float = Field(description="how typical of the task's labels the text is (relative Mahalanobis, "
                                  "higher is more in scope); below oos_threshold it is out of scope")


class PredictOut(BaseModel):
    version: int
    predictions: list[PredictionOut]


class EvaluateExample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: SafeStr = Field(min_length=1, description="a labelled text (an empty one is a data error here)")
    label: Text | None = Field(description="gold label; null marks an out-of-scope text")


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    examples: list[EvaluateExample] = Field(min_length=1)
    version: Version | None = None


class EvaluateOut(BaseModel):
    version: int
    report: dict = Field(description="accuracy, top1_accuracy (without rejection), macro_f1, calibration_error, "
                         "per_label, confusions, out_of_scope (with auroc)")


class TaskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    oos_threshold: Threshold | None = Field(None, description="the out-of-scope threshold override, if any")


class TaskDocument(BaseModel):
    """A whole task as one JSON document, for moving it between deployments. Unknown
    keys are refused (a misspelt one would otherwise lose its data silently)."""

    model_config = ConfigDict(extra="forbid")
    format: str = Field(pattern="^fewshot-task$")
    format_version: int = Field(ge=1, le=2, description="2 when the document has unlabelled texts")
    name: Name
    version: int | None = Field(None, description="the exported version (ignored on import)")
    labels: list[LabelIn] = Field(default_factory=list)
    examples: list[ExampleIn] = Field(default_factory=list)
    out_of_scope: list[Text] = Field(default_factory=list)
    unlabelled: list[Text] = Field(default_factory=list)
    settings: TaskSettings = Field(default_factory=TaskSettings)
