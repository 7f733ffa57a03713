"""One settings model: environment (prefix CELESTRA_), an optional YAML file, or defaults (embedded mode)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.errors import ConfigError


class WorkerGroupRef(BaseModel):
    key: str
    fallback: Literal["WAIT", "FAIL", "CANCEL"] = "WAIT"


class NamespaceSettings(BaseModel):
    worker_group: WorkerGroupRef | None = Field(None, description="Default worker group of the namespace's tasks.")
    variables: dict[str, Any] = Field(default_factory=dict, description="Reserved for namespace variables.")


class WorkerGroupSettings(BaseModel):
    description: str = ""


class Limits(BaseModel):
    """Bounds on what a flow's author controls, so that no flow file or template can exhaust a process.
    Each one, when hit, is a clear error naming it (and the setting that raises it)."""

    flow_file_bytes: int = Field(1_048_576, gt=0, description="Largest flow file (or source) accepted, in bytes.")
    yaml_nodes: int = Field(100_000, gt=0, description="YAML nodes a flow may expand to, aliases counted per use.")
    template_chars: int = Field(10_000_000, gt=0, description="Longest string a template may build.")
    template_items: int = Field(1_000_000, gt=0, description="Largest list or map a template may build.")
    template_int_digits: int = Field(10_000, gt=0, description="Largest integer a template may compute, in digits.")
    template_seconds: float = Field(10.0, gt=0, allow_inf_nan=False,
                                    description="Wall-clock budget of one template rendering.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CELESTRA_", env_nested_delimiter="__", extra="forbid")

    broker_url: str | None = Field(None, description="Celery broker; unset means embedded (in-memory, one process).")
    database_url: str | None = Field(None, description="SQLAlchemy URL; unset means SQLite under home.")
    storage_url: str | None = Field(None, description="Internal storage: a folder, file:// or s3:// URL.")
    home: Path = Field(Path(".celestra"), description="Folder for embedded state (SQLite, local storage).")
    default_queue: str = Field("celery", description="Queue of tasks with no worker group.")
    executor_queue: str = Field("celestra.executor", description="Queue the server consumes (execution starts).")
    timer_interval: float = Field(0.5, description="Seconds between scans for due retries, pauses and waits.")
    heartbeat_interval: float = Field(3.0, description="Seconds between a worker's liveness heartbeats.")
    worker_timeout: float = Field(
        15.0, description="A worker whose last heartbeat is older than this is dead: its running tasks are resent."
    )
    redelivery_after: float = Field(
        10.0, description="Seconds a task run may wait for a worker to claim it before the server checks that its "
                          "message is still on the broker, and sends it again if not.")
    chain_inline_for: float = Field(
        1.0, ge=0, description="Seconds a worker process that ends a task run may go on with the run that follows it "
                               "(one of a queue it serves) itself, without a broker round trip; then it hands back "
                               "to the broker so other executions get their turn. 0: always through the broker.")
    store_retry_for: float = Field(
        3600.0, description="Seconds a worker keeps retrying to claim a task run or to record an attempt's outcome "
                            "while the database is unreachable (the outcome is kept in memory meanwhile).")
    trigger_poll_interval: float = Field(
        0.1, gt=0, description="Seconds between the server's scans for polling triggers due for evaluation.")
    trigger_evaluation_timeout: float = Field(
        120.0, gt=0, description="Seconds a polling trigger's evaluation may take: then the worker stops it and the "
                                 "server releases the trigger (also when the worker or its message was lost), so a "
                                 "hung evaluation never locks the trigger.")
    local_files_allowed_paths: list[Path] = Field(
        default_factory=list, description="Folders of the worker the fs.local tasks and Trigger may read and write "
                                          "(Kestra's allowed-paths); empty: those tasks are refused.")
    public_url: str | None = Field(
        None, description="Where users open Celestra (e.g. https://celestra.example.com): the execution-summary "
                          "notifications link to {public_url}/ui/main/executions/{namespace}/{flow}/{id}; unset: "
                          "they carry no link.")
    namespaces: dict[str, NamespaceSettings] = Field(default_factory=dict)
    worker_groups: dict[str, WorkerGroupSettings] = Field(default_factory=dict)
    globals: dict[str, Any] = Field(default_factory=dict, description="Values exposed as {{ globals.* }}.")
    limits: Limits = Field(default_factory=Limits, description="Bounds on flow files and templates.")
    docker_volumes_enabled: bool = Field(False, description="Let Docker task runners mount host `volumes`.")
    script_env_inherited: list[str] | None = Field(
        None, description="Worker environment variables a script run by the Process runner inherits; unset: PATH, "
                          "HOME, USER, LOGNAME, SHELL, the locale, TZ, TMPDIR and TERM. CELESTRA_* and SECRET_* never "
                          "are; everything else a script sees comes from its task's `env`.")
    default_task_runner: str = Field("process", description="Task runner of scripts that name none.")
    env_vars_prefix: str = Field("ENV_", description="Env vars with this prefix are exposed as {{ envs.* }}.")
    secrets_prefix: str = Field("SECRET_", description="Env var prefix of base64-encoded secrets (Kestra OSS).")
    encryption_key: SecretStr | None = Field(
        None, description="Key encrypting SECRET inputs at rest (`celestra keygen`); embedded: kept under home."
    )
    api_host: str = Field("127.0.0.1", description="Address the REST API listens on (`celestra server` and "
                                                   "`celestra webserver`); 0.0.0.0 to be reached from other hosts.")
    api_port: int = Field(8080, description="Port of the REST API; 0: `celestra server` serves none.")
    api_basic_auth: SecretStr | None = Field(
        None, description="user:password pairs the REST API accepts (comma-separated); bearer tokens come from "
                          "`celestra api-token create`. With neither, every request is refused unless api_no_auth.")
    api_no_auth: bool = Field(False, description="Let the REST API serve without authentication (local use).")
    flower_basic_auth: SecretStr | None = Field(
        None, description="Credentials `celestra flower` requires, user:password (several comma-separated, as Flower "
                          "takes them: no comma in a password); it refuses to start without them unless "
                          "flower_no_auth is set.")
    flower_no_auth: bool = Field(
        False, description="Let `celestra flower` serve its pages and API without authentication (local use).")
    probe_dir: Path | None = Field(
        None, description="Folder of the files `celestra probe` reads (one per server or worker node); unset: the "
                          "system's temporary folder.")

    def execution_url(self, namespace: str, flow_id: str, execution_id: str) -> str | None:
        """Where users open an execution (notifications, the API's answers); None without public_url."""
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}/ui/main/executions/{namespace}/{flow_id}/{execution_id}"

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'celestra.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str((self.home / "storage").resolve())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments (the parsed --config file) win over the environment.
        return init_settings, env_settings


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Settings from `config_file` (or $CELESTRA_CONFIG), overridden by CELESTRA_* environment variables."""
    path = config_file or os.environ.get("CELESTRA_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read configuration file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"Configuration file {path} must hold a mapping")
        data = loaded
    env = Settings()  # environment only
    explicit_env = {k for k in Settings.model_fields if f"CELESTRA_{k.upper()}" in os.environ}
    merged = {**data, **{k: getattr(env, k) for k in explicit_env}}
    for key in ("limits",):  # nested settings: CELESTRA_LIMITS__X overrides that one value of the file's
        prefix = f"CELESTRA_{key.upper()}__"
        if key not in explicit_env and any(name.upper().startswith(prefix) for name in os.environ):
            section, from_file = getattr(env, key), data.get(key) or {}
            if not isinstance(from_file, dict):
                raise ConfigError(f"Invalid configuration{' in ' + str(path) if path else ''}: {key} must be a "
                                  "mapping")
            merged[key] = {**from_file, **section.model_dump(include=section.model_fields_set)}
    try:
        return Settings(**merged)
    except Exception as exc:  # pydantic ValidationError: name the file
        raise ConfigError(f"Invalid configuration{' in ' + str(path) if path else ''}: {exc}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


# The settings this process runs with: configured once (the CLI's --config, tests), else read from the environment.
_current: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Use these settings from now on; app.runtime.configure also drops the store built from the old ones."""
    global _current
    _current = settings


def configured() -> Settings | None:
    """The settings given to `configure`, or None when the process uses the environment's."""
    return _current


def current() -> Settings:
    return _current or get_settings()
