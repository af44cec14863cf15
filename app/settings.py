"""All configuration in one place, read from ``FEWSHOT_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.db.session import is_in_memory_sqlite
from models.inner_loop import InnerLoopConfig


class Settings(BaseSettings):
    """Service settings. ``environment=production`` refuses unsafe defaults."""

    model_config = SettingsConfigDict(env_prefix="FEWSHOT_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    api_docs: bool | None = Field(None, description="serve /docs, /redoc and /openapi.json; unset: not in production")
    database_url: str = "sqlite:///./fewshot.db"
    auto_migrate: bool = Field(True, description="run `alembic upgrade head` at start")
    admin_key: SecretStr | None = None
    metrics_key: SecretStr | None = Field(None, description="when set, GET /metrics needs 'Authorization: Bearer <key>'")
    encoder: str | None = Field(None, description="`all-MiniLM-L6-v2` (packaged, the default), `all-mpnet-base-v2` "
                                "(the mpnet extra) or a sentence-transformers directory")
    encoder_cache: str | None = Field(None, description="where all-mpnet-base-v2 is unpacked on first use; "
                                      "default: ~/.cache/fewshot/encoders")
    checkpoint: str = Field("default", description="meta-trained checkpoint dir, `default` (the one shipped for the "
                                                "encoder, if any) or `none`")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    encoder_batch_size: int = Field(64, ge=1, le=4096)
    encoder_quantize: Literal["none", "int8"] = Field(
        "none", description="`int8`: dynamic int8 quantisation of the encoder's linear layers (CPU only)")
    torch_threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: all cores")

    # Limits (413 when exceeded); documented in the README.
    max_text_chars: int = Field(2000, ge=1)
    max_examples_per_task: int = Field(20_000, ge=2)
    max_examples_per_request: int = Field(5_000, ge=1)
    max_unlabelled_per_task: int = Field(10_000, ge=0, description="unlabelled texts a task may hold")
    max_labels_per_task: int = Field(1_000, ge=2)
    max_versions_per_task: int = Field(1_000, ge=1, description="versions a task keeps; a change beyond is 413")
    max_tasks_per_tenant: int = Field(10_000, ge=1, description="tasks one tenant may have; a create beyond is 413")
    max_label_chars: int = Field(200, ge=1, le=200, description="at most 200: the width of the label column")
    max_predict_texts: int = Field(1_024, ge=1)
    max_evaluate_texts: int = Field(10_000, ge=1, description="labelled texts in one evaluate call")
    max_top_k: int = Field(50, ge=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    adapter_cache_bytes: int = Field(512 * 1024 * 1024, ge=0)

    # Micro-batching of predict calls (see app/services/batcher.py).
    batch_wait_ms: float = Field(2.0, ge=0, description="how long a pass waits for more requests when the server is busy")
    batch_max_texts: int = Field(256, ge=1, description="texts per encoder pass at most")
    queue_max_texts: int = Field(8192, ge=1, description="queued texts before 503 Retry-After")
    queue_max_texts_per_tenant: int = Field(4096, ge=1, description="one tenant's share of the queue before its 503s")
    rate_limit_per_tenant: float = Field(0.0, ge=0, allow_inf_nan=False,
                                         description="requests per second one tenant may make on average; 0: no limit")
    rate_limit_burst: int = Field(0, ge=0, description="requests a tenant may make at once; 0: twice the rate, at least 1")
    max_concurrent_requests: int = Field(64, ge=1, description="worker threads for request handling")

    # Out-of-scope rejection and ambiguity (per task, calibrated from its support set).
    oos_reject_quantile: float = Field(0.05, ge=0, le=0.5, description="share of held-out in-scope support texts the default threshold rejects")
    ambiguity_margin: float = Field(0.1, ge=0, le=1, description="top-2 probability gap below which a prediction is ambiguous")

    # Inner-loop overrides; unset values come from the checkpoint (or the defaults).
    inner_steps: int | None = Field(None, ge=0, le=1000)
    inner_learning_rate: float | None = Field(None, gt=0)
    inner_proximal: float | None = Field(None, ge=0)
    inner_scale: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.metrics_key is not None and not self.metrics_key.get_secret_value().strip():
            raise ValueError("FEWSHOT_METRICS_KEY is blank: set a key, or unset it to leave /metrics open")
        if self.environment == "production":
            problems = []
            key = self.admin_key.get_secret_value().strip() if self.admin_key is not None else ""
            if len(key) < 24 or len(set(key)) < 10:
                problems.append("FEWSHOT_ADMIN_KEY must be set to at least 24 characters, at least 10 of them different "
                                "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
            if is_in_memory_sqlite(self.database_url):
                problems.append("an in-memory database loses every task on restart")
            if problems:
                raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    def inner_loop(self, learned: InnerLoopConfig) -> InnerLoopConfig:
        """The checkpoint's learned inner loop with any explicit overrides applied."""
        values = learned.to_dict()
        overrides = {
            "steps": self.inner_steps,
            "learning_rate": self.inner_learning_rate,
            "proximal": self.inner_proximal,
            "scale": self.inner_scale,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return InnerLoopConfig.from_dict(values)


class _DatabaseSetting(BaseSettings):
    """Only the database URL, read like :class:`Settings` reads it (``FEWSHOT_DATABASE_URL``,
    then ``.env``), without the other fields' checks: what the ``alembic`` command uses."""

    model_config = Settings.model_config
    database_url: str = Settings.model_fields["database_url"].default


def configured_database_url() -> str:
    return _DatabaseSetting().database_url
