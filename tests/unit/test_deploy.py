"""The deployment files of deploy/ checked against each other and against the code, with no service running.

Each check is a function returning the problems it finds: the tests assert the real files have none, and
`test_check_catches` breaks a copy of the files in one way per check to show that check does fail.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from app.cli import cli
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG_FILE = DEPLOY / "celestra.yaml"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
# The image carries every extra, so any task type and runner works on any worker of it.
ALL_EXTRAS = "postgres,flower,docker,aws,gcp,http,sql,mysql,duckdb"
K8S = DEPLOY / "kubernetes"
IMAGE = "celestra"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
CLUSTER_SCOPED_KINDS = {"Namespace"}
FLOWER_DEFAULT_PORT = 5555  # Flower's own default when no --port is given
FLOWER_AUTH_ENV = "CELESTRA_FLOWER_BASIC_AUTH"
# Compose's "required" interpolation: `docker compose` stops with the message when the variable is unset or empty.
REQUIRED_FROM_ENV = re.compile(r"\$\{" + FLOWER_AUTH_ENV + r":\?[^}]+\}")
# Ways to open Flower or to ship a credential other than CELESTRA_FLOWER_BASIC_AUTH from the operator.
FLOWER_OPENERS = {"CELESTRA_FLOWER_NO_AUTH", "FLOWER_UNAUTHENTICATED_API", "FLOWER_BASIC_AUTH", "FLOWER_AUTH"}
GROUP_LABEL = "celestra.io/worker-group"


# -- the files ------------------------------------------------------------------------------------------------------
def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


@dataclass
class Deploy:
    config: dict[str, Any]
    compose: dict[str, Any]
    k8s: list[tuple[str, dict[str, Any]]]  # (file name, object), Kustomization excluded
    kustomization: dict[str, Any]
    dockerfile: str
    k8s_files: list[str] = field(default_factory=list)


def load_deploy() -> Deploy:
    k8s: list[tuple[str, dict[str, Any]]] = []
    kustomization: dict[str, Any] = {}
    for path in sorted(K8S.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            if doc.get("kind") == "Kustomization":
                kustomization = doc
            else:
                k8s.append((path.name, doc))
    return Deploy(
        config=yaml.safe_load(CONFIG_FILE.read_text()),
        compose=yaml.safe_load(COMPOSE_FILE.read_text()),
        k8s=k8s,
        kustomization=kustomization,
        dockerfile=DOCKERFILE.read_text(),
        k8s_files=sorted(p.name for p in K8S.glob("*.y*ml")),
    )


@pytest.fixture(scope="module")
def deploy() -> Deploy:
    return load_deploy()


# -- commands -------------------------------------------------------------------------------------------------------
@dataclass
class Command:
    """One container's command, understood: which program, which subcommand, which options."""

    argv: list[str]
    program: str  # "celestra" or "celery"
    name: str  # subcommand: server, worker, flower, ...
    config: str | None = None  # --config given on the command line
    queues: list[str] | None = None  # the queues a worker serves; None when not a worker
    extra: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # celestra's own options, parsed


def parse_command(argv: Any, settings: Settings) -> Command:
    """Parse a command the way its program would; raise ValueError saying why it is not a Celestra command."""
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"command must be a non-empty list of strings, got {argv!r}")
    if argv[0] == "celestra":
        return _parse_celestra(argv, settings)
    if argv[:3] == ["celery", "-A", "app"]:
        return _parse_celery(argv)
    raise ValueError(f"{shlex.join(argv)!r} starts with neither `celestra` nor `celery -A app`")


def _parse_celestra(argv: list[str], settings: Settings) -> Command:
    # Only parse, never invoke. Duck-typed: recent typer releases vendor their own copy of click.
    command: Any = typer.main.get_command(cli)
    ctx = command.context_class(command, info_name="celestra")
    rest = argv[1:]
    try:
        while hasattr(command, "list_commands"):  # a group: the next word names a subcommand
            if not rest or rest[0].startswith("-"):
                raise ValueError("no celestra subcommand named")
            sub = command.get_command(ctx, rest[0])
            if sub is None:
                raise ValueError(f"celestra has no command {rest[0]!r}")
            if hasattr(sub, "list_commands"):
                ctx = sub.context_class(sub, info_name=rest[0], parent=ctx)
                command, rest = sub, rest[1:]
            else:
                ctx = sub.make_context(rest[0], rest[1:], parent=ctx)
                command, rest = sub, []
    except Exception as exc:  # click's UsageError, BadParameter, NoSuchOption, ...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise ValueError(f"{shlex.join(argv)!r} does not parse: {message}") from exc
    name = command.name or ""
    source = ctx.get_parameter_source("config")
    from_cli = source is not None and source.name == "COMMANDLINE"  # not filled from $CELESTRA_CONFIG
    config = str(ctx.params["config"]) if from_cli and ctx.params.get("config") else None
    queues = [ctx.params.get("worker_group") or settings.default_queue] if name == "worker" else None
    return Command(argv, "celestra", name, config=config, queues=queues, extra=list(ctx.args),
                   params=dict(ctx.params))


def _parse_celery(argv: list[str]) -> Command:
    rest = argv[3:]
    if not rest or rest[0].startswith("-"):
        raise ValueError(f"{shlex.join(argv)!r} names no celery subcommand")
    queues: list[str] | None = None
    if rest[0] == "worker":
        queues = []
        for i, arg in enumerate(rest):
            if arg in ("-Q", "--queues") and i + 1 < len(rest):
                queues += rest[i + 1].split(",")
            elif arg.startswith("--queues="):
                queues += arg.split("=", 1)[1].split(",")
            elif arg.startswith("-Q") and len(arg) > 2:
                queues += arg[2:].lstrip("=").split(",")
        if not queues:
            raise ValueError(f"{shlex.join(argv)!r}: a worker must name its queues with -Q")
    return Command(argv, "celery", rest[0], queues=queues, extra=rest[1:])


def flower_port(command: Command) -> int:
    for i, arg in enumerate(command.extra):
        if arg.startswith("--port="):
            return int(arg.split("=", 1)[1])
        if arg == "--port" and i + 1 < len(command.extra):
            return int(command.extra[i + 1])
    return FLOWER_DEFAULT_PORT


def flower_option(command: Command, name: str) -> str | None:
    """The last `--name=value` Flower reads from the command (tornado's rules: `_` or `-`, stops at a positional)."""
    value = None
    for arg in command.extra:
        if arg == "--" or not arg.startswith("-"):
            break
        key, _, given = arg.lstrip("-").partition("=")
        if key.replace("_", "-") == name:
            value = given
    return value


def _flower_command_problems(where: str, command: Command, env_names: set[str]) -> list[str]:
    """Flower opened, or bound where its port cannot reach it: the same rules for compose and Kubernetes."""
    problems = []
    if command.program != "celestra":
        problems.append(f"{where}: `celery -A app flower` binds every interface and needs no login: run "
                        "`celestra flower`")
        return problems
    if command.params.get("no_auth"):
        problems.append(f"{where}: `celestra flower --no-auth` serves the workers and broker to anyone")
    if flower_option(command, "basic-auth") or flower_option(command, "auth"):
        problems.append(f"{where}: a credential on Flower's command line ships with the file: use {FLOWER_AUTH_ENV}")
    if opened := sorted(FLOWER_OPENERS & env_names):
        problems.append(f"{where}: {', '.join(opened)} set: the credential must come only from {FLOWER_AUTH_ENV}")
    address = flower_option(command, "address") or "127.0.0.1"  # `celestra flower`'s default
    if address in ("127.0.0.1", "localhost", "::1"):
        problems.append(f"{where}: Flower binds {address} inside its container, which its published port or "
                        "Service cannot reach: pass --address=0.0.0.0")
    return problems


# -- Dockerfile -----------------------------------------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buffer):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            keyword, _, args = buffer.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
        buffer = ""
    return result


def _exec_form(args: str) -> list[str]:
    if args.startswith("["):
        return list(json.loads(args))
    return shlex.split(args)


def image_command(dockerfile: str) -> list[str]:
    """ENTRYPOINT + CMD of the final image, as the argv the container starts with."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for keyword, args in dockerfile_instructions(dockerfile):
        if keyword == "ENTRYPOINT":
            entrypoint = _exec_form(args)
        elif keyword == "CMD":
            cmd = _exec_form(args)
    return entrypoint + cmd


def image_uid(dockerfile: str) -> int | None:
    for keyword, args in dockerfile_instructions(dockerfile):
        if keyword == "RUN" and "useradd" in args:
            found = re.search(r"--uid[ =](\d+)", args)
            if found:
                return int(found.group(1))
    return None


def _pip_install_extras(run_args: str) -> set[str] | None:
    """Extras of a `pip install .[...]` in this RUN, or None when it installs no local project."""
    tokens = shlex.split(run_args)
    for i in range(len(tokens) - 1):
        if tokens[i].endswith("pip") and tokens[i + 1] == "install":
            for token in tokens[i + 2 :]:
                if token in ("&&", ";", "||"):
                    break
                found = re.fullmatch(r"\.(?:\[([^\]]*)\])?", token)
                if found:
                    return {e.strip() for e in (found.group(1) or "").split(",") if e.strip()}
    return None


# -- compose helpers ------------------------------------------------------------------------------------------------
def _env_dict(environment: Any) -> dict[str, str]:
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v) for k, v in environment.items()}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {}


def _compose_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of a service's volumes, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source", "")), str(volume.get("target", ""))))
        else:
            parts = str(volume).split(":")
            if len(parts) >= 2:
                mounts.append((parts[0], parts[1]))
    return mounts


def _compose_container_ports(service: dict[str, Any]) -> list[int]:
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append(int(port["target"]))
        else:
            ports.append(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def is_celestra_image(image: str | None) -> bool:
    return bool(image) and str(image).rsplit("/", 1)[-1].split(":")[0].split("@")[0] == IMAGE


def compose_celestra_services(d: Deploy) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in d.compose.get("services", {}).items():
        build = service.get("build")
        if is_celestra_image(service.get("image")) or build is not None:
            yield name, service


def compose_argv(d: Deploy, service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return image_command(d.dockerfile)
    return shlex.split(command) if isinstance(command, str) else command


# -- kubernetes helpers ---------------------------------------------------------------------------------------------
def k8s_objects(d: Deploy, *kinds: str) -> list[dict[str, Any]]:
    return [doc for _, doc in d.k8s if doc.get("kind") in kinds]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}


def k8s_celestra_containers(d: Deploy) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for workload in k8s_objects(d, *WORKLOAD_KINDS):
        for container in pod_spec(workload).get("containers", []):
            if is_celestra_image(container.get("image")):
                yield workload, container


def k8s_argv(d: Deploy, container: dict[str, Any]) -> list[str]:
    command = container.get("command") or image_command(d.dockerfile)
    return [*command, *container.get("args", [])]


def _k8s_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def _wname(workload: dict[str, Any]) -> str:
    return f"{workload.get('kind')}/{workload.get('metadata', {}).get('name')}"


def _settings(d: Deploy) -> Settings:
    return Settings(**d.config)


def all_commands(d: Deploy) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """(where, argv, environment) of every Celestra container of compose and Kubernetes."""
    for name, service in compose_celestra_services(d):
        yield f"compose service {name}", compose_argv(d, service), _env_dict(service.get("environment"))
    for workload, container in k8s_celestra_containers(d):
        yield f"{_wname(workload)} container {container.get('name')}", k8s_argv(d, container), _k8s_env(container)


# -- checks: each returns its problems ------------------------------------------------------------------------------
def check_yaml_parses(files: list[Path] | None = None) -> list[str]:
    problems = []
    files = yaml_files() if files is None else files
    if len(files) < 3:
        problems.append(f"expected the YAML files of deploy/, found {files}")
    for path in files:
        try:
            docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        except yaml.YAMLError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if not docs or not all(isinstance(doc, dict) for doc in docs):
            problems.append(f"{path}: every document must be a mapping")
    return problems


def check_config_valid(d: Deploy) -> list[str]:
    try:
        settings = Settings(**d.config)
    except Exception as exc:
        return [f"deploy/celestra.yaml is not valid settings: {exc}"]
    problems = []
    if settings.embedded:
        problems.append("deploy/celestra.yaml names no broker_url: every process would run embedded, alone")
    for namespace, ns in settings.namespaces.items():
        if ns.worker_group and ns.worker_group.key not in settings.worker_groups:
            problems.append(f"namespace {namespace} defaults to undeclared worker group {ns.worker_group.key!r}")
    return problems


def check_commands(d: Deploy) -> list[str]:
    problems = []
    found = list(all_commands(d))
    if not found:
        problems.append("no Celestra service or container found")
    settings = _settings(d)
    for where, argv, _ in found:
        try:
            parse_command(argv, settings)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def _served(d: Deploy) -> dict[str, dict[str, list[str]]]:
    """{"compose" | "kubernetes": {queue: [where it is served]}}."""
    settings = _settings(d)
    served: dict[str, dict[str, list[str]]] = {"compose": {}, "kubernetes": {}}
    for where, argv, _ in all_commands(d):
        try:
            command = parse_command(argv, settings)
        except ValueError:
            continue  # check_commands reports it
        for queue in command.queues or []:
            served["compose" if where.startswith("compose") else "kubernetes"].setdefault(queue, []).append(where)
    return served


def check_worker_groups(d: Deploy) -> list[str]:
    settings = _settings(d)
    allowed = {*settings.worker_groups, settings.default_queue}
    problems = []
    for system, queues in _served(d).items():
        for queue, where in queues.items():
            if queue not in allowed:
                problems.append(f"{', '.join(where)} serves {queue!r}: neither declared in worker_groups nor the "
                                f"default queue {settings.default_queue!r}")
        for group in sorted(allowed - set(queues)):
            problems.append(f"{system}: no worker serves {group!r}")
    return problems


def check_group_labels(d: Deploy) -> list[str]:
    settings = _settings(d)
    problems = []
    for workload, container in k8s_celestra_containers(d):
        try:
            command = parse_command(k8s_argv(d, container), settings)
        except ValueError:
            continue
        label = pod_labels(workload).get(GROUP_LABEL)
        if command.queues is None:
            if label is not None:
                problems.append(f"{_wname(workload)} is no worker but is labelled {GROUP_LABEL}={label}")
            continue
        expected = ["default" if q == settings.default_queue else q for q in command.queues]
        if label not in expected:
            problems.append(f"{_wname(workload)} serves {command.queues} but is labelled {GROUP_LABEL}={label}")
    return problems


def _config_path(command: Command, env: dict[str, str], where: str, problems: list[str]) -> str | None:
    from_env = env.get("CELESTRA_CONFIG")
    if command.config and from_env and command.config != from_env:
        problems.append(f"{where}: --config {command.config} but CELESTRA_CONFIG={from_env}")
    path = command.config or from_env
    if not path:
        problems.append(f"{where}: no --config and no CELESTRA_CONFIG: it would run with defaults (embedded)")
    return path


def check_compose_mounts(d: Deploy) -> list[str]:
    settings = _settings(d)
    problems = []
    services = list(compose_celestra_services(d))
    if not services:
        problems.append("no Celestra service in docker-compose.yml")
    declared_volumes = set(d.compose.get("volumes") or {})
    storage_sources = set()
    for name, service in services:
        where = f"compose service {name}"
        try:
            command = parse_command(compose_argv(d, service), settings)
        except ValueError:
            continue
        mounts = dict((target, source) for source, target in _compose_mounts(service))
        for source, _ in _compose_mounts(service):
            if not source.startswith((".", "/")) and source not in declared_volumes:
                problems.append(f"{where} mounts undeclared named volume {source!r}")
        path = _config_path(command, _env_dict(service.get("environment")), where, problems)
        if path:
            mounted = mounts.get(path)
            if mounted is None:
                problems.append(f"{where} reads {path} but mounts nothing there")
            elif (DEPLOY / mounted).resolve() != CONFIG_FILE.resolve():
                problems.append(f"{where} mounts {mounted} on {path}, not deploy/celestra.yaml")
        if settings.storage_url and settings.storage_url.startswith("/") and command.name != "flower":
            if settings.storage_url not in mounts:
                problems.append(f"{where} does not mount the storage folder {settings.storage_url}")
            else:
                storage_sources.add(mounts[settings.storage_url])
    if len(storage_sources) > 1:
        problems.append(f"compose services mount different volumes as storage: {sorted(storage_sources)}")
    return problems


def check_compose_build(d: Deploy) -> list[str]:
    problems = []
    for name, service in compose_celestra_services(d):
        build = service.get("build")
        if build is None:
            continue
        context = DEPLOY / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if context.resolve() != ROOT:
            problems.append(f"compose service {name}: build context {context} is not the repository root")
        if (context / dockerfile).resolve() != DOCKERFILE.resolve():
            problems.append(f"compose service {name}: builds {dockerfile}, not deploy/Dockerfile")
    return problems


def _url_host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url and "://" in url else None


def check_compose_depends_on(d: Deploy) -> list[str]:
    settings = _settings(d)
    services = d.compose.get("services", {})
    problems = []
    needed = {h for h in (_url_host(settings.broker_url), _url_host(settings.database_url)) if h}
    for host in sorted(needed - set(services)):
        problems.append(f"celestra.yaml points at host {host!r}, which is no compose service")
    for name, service in compose_celestra_services(d):
        depends = service.get("depends_on") or {}
        if not isinstance(depends, dict):
            problems.append(f"compose service {name}: depends_on has no conditions")
            continue
        for host in sorted(needed):
            condition = (depends.get(host) or {}).get("condition")
            if condition != "service_healthy":
                problems.append(f"compose service {name} does not wait for {host} to be healthy ({condition})")
        for other, spec in depends.items():
            if (spec or {}).get("condition") == "service_healthy" and "healthcheck" not in services.get(other, {}):
                problems.append(f"compose service {name} waits for {other} to be healthy, which has no healthcheck")
    return problems


def check_flower(d: Deploy) -> list[str]:
    settings = _settings(d)
    problems = []
    seen = {"compose": 0, "kubernetes": 0}
    services = k8s_objects(d, "Service")
    shipped_secrets = {doc.get("metadata", {}).get("name") for doc in k8s_objects(d, "Secret")}
    problems += [f"deploy/celestra.yaml sets {key}: a credential or opt-out shipped with the file"
                 for key in ("flower_basic_auth", "flower_no_auth") if key in d.config]
    for name, service in compose_celestra_services(d):
        try:
            command = parse_command(compose_argv(d, service), settings)
        except ValueError:
            continue
        if command.name != "flower":
            continue
        seen["compose"] += 1
        port = flower_port(command)
        if port not in _compose_container_ports(service):
            problems.append(f"compose service {name}: Flower listens on {port}, ports publish "
                            f"{_compose_container_ports(service)}")
        env = _env_dict(service.get("environment"))
        problems += _flower_command_problems(f"compose service {name}", command, set(env))
        if FLOWER_AUTH_ENV not in env:
            problems.append(f"compose service {name}: no {FLOWER_AUTH_ENV}: `celestra flower` refuses to start")
        elif not REQUIRED_FROM_ENV.fullmatch(env[FLOWER_AUTH_ENV]):
            # A literal or a `:-` default would be a credential everyone who has the file knows.
            problems.append(f"compose service {name}: {FLOWER_AUTH_ENV} must be required from the operator's "
                            f"environment (${{{FLOWER_AUTH_ENV}:?message}}), never a literal or a default")
    for workload, container in k8s_celestra_containers(d):
        try:
            command = parse_command(k8s_argv(d, container), settings)
        except ValueError:
            continue
        if command.name != "flower":
            continue
        seen["kubernetes"] += 1
        port = flower_port(command)
        ports = container.get("ports", [])
        if port not in [p.get("containerPort") for p in ports]:
            problems.append(f"{_wname(workload)}: Flower listens on {port}, containerPorts are "
                            f"{[p.get('containerPort') for p in ports]}")
        names = {p.get("name") for p in ports if p.get("containerPort") == port and p.get("name")}
        selecting = [s for s in services if _selects(s.get("spec", {}).get("selector") or {}, pod_labels(workload))]
        targets = [p.get("targetPort", p.get("port")) for s in selecting for p in s["spec"].get("ports", [])]
        if not any(t == port or t in names for t in targets):
            problems.append(f"{_wname(workload)}: no Service sends traffic to Flower's port {port} "
                            f"(Service targetPorts: {targets})")
        env_vars: dict[str, dict[str, Any]] = {e["name"]: e for e in container.get("env", [])}
        problems += _flower_command_problems(_wname(workload), command, set(env_vars))
        auth_var = env_vars.get(FLOWER_AUTH_ENV, {})
        secret_ref = (auth_var.get("valueFrom") or {}).get("secretKeyRef") or {}
        if not secret_ref or "value" in auth_var:
            problems.append(f"{_wname(workload)}: {FLOWER_AUTH_ENV} must come from a Secret (secretKeyRef)")
        elif secret_ref.get("optional"):
            problems.append(f"{_wname(workload)}: the Secret of {FLOWER_AUTH_ENV} is optional: without it Flower "
                            "would not start, so the pod should wait for it")
        elif secret_ref.get("name") in shipped_secrets:
            problems.append(f"{_wname(workload)}: Secret {secret_ref.get('name')} ships with the manifests: its "
                            "credential is a default everyone knows; the operator creates it")
    problems += [f"no Flower in {system}" for system, count in seen.items() if not count]
    return problems


def check_dockerfile(d: Deploy) -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras_known = set(pyproject["project"].get("optional-dependencies", {}))
    packages = {p.rstrip("*").rstrip(".") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed = {"pyproject.toml", pyproject["project"]["readme"], *{p for p in packages if (ROOT / p).is_dir()}}
    instructions = dockerfile_instructions(d.dockerfile)
    problems = []
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    if not froms or froms[0].split()[0] != "python:3.11-slim":
        problems.append(f"the image must be based on python:3.11-slim, FROM is {froms}")
    workdir = PurePosixPath("/")
    landed: dict[str, PurePosixPath] = {}  # repository top-level name -> where it lands in the image
    installed = False
    for keyword, args in instructions:
        if keyword == "WORKDIR":
            workdir = workdir / args
        elif keyword in ("COPY", "ADD"):
            tokens = [t for t in shlex.split(args) if not t.startswith("--")]
            *sources, dest = tokens
            dest_path = workdir / dest
            into_dir = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
            for source in sources:
                name = source.rstrip("/")
                if name in ("", ".", "*") or not (ROOT / name).exists():
                    problems.append(f"COPY {source}: copy named files only, and only existing ones "
                                    "(no .dockerignore may hide .venv/ or .git/)")
                    continue
                # A directory's contents land in dest; a file lands in dest, or under its name when dest is a folder.
                is_dir = (ROOT / name).is_dir()
                landed[name] = dest_path if is_dir else dest_path / name if into_dir else dest_path
        elif keyword == "RUN":
            extras = _pip_install_extras(args)
            if extras is None:
                continue
            installed = True
            missing = set(ALL_EXTRAS.split(",")) - extras
            if missing:
                problems.append(f"`pip install .[{','.join(sorted(extras))}]` lacks the extras {sorted(missing)}")
            unknown = extras - extras_known
            if unknown:
                problems.append(f"pyproject.toml declares no extras {sorted(unknown)}")
            for name in sorted(needed):
                if landed.get(name) != workdir / name:
                    problems.append(f"pip installs from {workdir} but {name} was copied to {landed.get(name)}")
    if not installed:
        problems.append(f"no RUN installs the project (`pip install '.[{ALL_EXTRAS}]'`)")
    if "flows" not in landed:
        problems.append("the example flows/ are not copied into the image")
    users = [args for keyword, args in instructions if keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the image must run as a non-root user, USER is {users}")
    argv = image_command(d.dockerfile)
    try:
        if parse_command(argv, _settings(d)).program != "celestra":
            problems.append(f"the image's command {argv} is not a celestra command")
    except ValueError as exc:
        problems.append(f"the image's command: {exc}")
    return problems


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_k8s_objects(d: Deploy) -> list[str]:
    problems = []
    namespaces = [doc["metadata"]["name"] for doc in k8s_objects(d, "Namespace")]
    if len(namespaces) != 1:
        problems.append(f"expected one Namespace object, found {namespaces}")
    for file, doc in d.k8s:
        meta = doc.get("metadata") or {}
        if not doc.get("apiVersion") or not doc.get("kind") or not meta.get("name"):
            problems.append(f"kubernetes/{file}: an object lacks apiVersion, kind or metadata.name")
        elif doc["kind"] not in CLUSTER_SCOPED_KINDS and meta.get("namespace") not in namespaces:
            problems.append(f"kubernetes/{file}: {doc['kind']}/{meta['name']} is not in namespace {namespaces}")
    resources = list(d.kustomization.get("resources", []))
    listed = sorted(f for f in d.k8s_files if f != "kustomization.yaml")
    if sorted(resources) != listed:
        problems.append(f"kustomization.yaml lists {sorted(resources)}, the folder holds {listed}")
    images = {i.get("name") for i in d.kustomization.get("images", [])}
    if IMAGE not in images:
        problems.append(f"kustomization.yaml has no images entry for {IMAGE!r} (to point pods at a registry)")
    return problems


def check_k8s_selectors(d: Deploy) -> list[str]:
    problems = []
    workloads = k8s_objects(d, *WORKLOAD_KINDS)
    if not workloads:
        problems.append("no Kubernetes workload found")
    for workload in workloads:
        spec_selector = workload.get("spec", {}).get("selector") or {}
        selector = spec_selector.get("matchLabels") or {}
        labels = pod_labels(workload)
        if set(spec_selector) - {"matchLabels"}:
            problems.append(f"{_wname(workload)}: only matchLabels selectors are checked here")
        if not _selects(selector, labels):
            problems.append(f"{_wname(workload)}: selector {selector} does not match its pod labels {labels}")
        for other in workloads:
            if other is not workload and _selects(selector, pod_labels(other)):
                problems.append(f"{_wname(workload)}: selector {selector} also matches the pods of {_wname(other)}")
    for service in k8s_objects(d, "Service"):
        selector = service.get("spec", {}).get("selector") or {}
        matched = [w for w in workloads if _selects(selector, pod_labels(w))]
        if not matched:
            problems.append(f"Service/{service['metadata']['name']}: selector {selector} matches no workload")
        for port in service.get("spec", {}).get("ports", []):
            target = port.get("targetPort", port.get("port"))
            for workload in matched:
                container_ports = [p for c in pod_spec(workload).get("containers", []) for p in c.get("ports", [])]
                if not any(target in (p.get("containerPort"), p.get("name")) for p in container_ports):
                    problems.append(f"Service/{service['metadata']['name']}: targetPort {target!r} is no port of "
                                    f"{_wname(workload)} ({container_ports})")
    return problems


def check_k8s_mounts(d: Deploy) -> list[str]:
    settings = _settings(d)
    problems = []
    configmaps = {doc["metadata"]["name"]: doc for doc in k8s_objects(d, "ConfigMap")}
    claims = {doc["metadata"]["name"]: doc for doc in k8s_objects(d, "PersistentVolumeClaim")}
    uid = image_uid(d.dockerfile)
    found = False
    for workload, container in k8s_celestra_containers(d):
        found = True
        where = _wname(workload)
        spec = pod_spec(workload)
        run_as = (spec.get("securityContext") or {}).get("runAsUser")
        if run_as is not None and run_as != uid:
            problems.append(f"{where}: runAsUser {run_as} is not the image's user {uid}")
        try:
            command = parse_command(k8s_argv(d, container), settings)
        except ValueError:
            continue
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        path = _config_path(command, _k8s_env(container), where, problems)
        if path:
            source = _configmap_source(container, volumes, path)
            if source is None:
                problems.append(f"{where} reads {path} but no ConfigMap key is mounted there")
            elif source[0] not in configmaps or source[1] not in (configmaps[source[0]].get("data") or {}):
                problems.append(f"{where} mounts {source[1]} of ConfigMap {source[0]}, which does not exist")
        if settings.storage_url and settings.storage_url.startswith("/") and command.name != "flower":
            mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == settings.storage_url),
                         None)
            claim = (volumes.get(mount["name"], {}) if mount else {}).get("persistentVolumeClaim", {})
            if not claim:
                problems.append(f"{where} mounts no volume claim on the storage folder {settings.storage_url}")
            elif claim.get("claimName") not in claims:
                problems.append(f"{where}: storage claim {claim.get('claimName')!r} is not defined")
            elif "ReadWriteMany" not in claims[claim["claimName"]]["spec"].get("accessModes", []):
                problems.append(f"{where}: storage claim {claim['claimName']} is not ReadWriteMany: pods on "
                                "different nodes could not share it")
    if not found:
        problems.append("no Kubernetes container runs the celestra image")
    return problems


def _configmap_source(container: dict[str, Any], volumes: dict[str, Any], path: str) -> tuple[str, str] | None:
    """(ConfigMap name, key) of the file a container sees at `path`, if a ConfigMap is mounted there."""
    for mount in container.get("volumeMounts", []):
        configmap = volumes.get(mount["name"], {}).get("configMap")
        if not configmap:
            continue
        items = {i["path"]: i["key"] for i in configmap.get("items", [])}
        if mount.get("subPath") and mount["mountPath"] == path:
            return configmap["name"], items.get(mount["subPath"], mount["subPath"])
        parent, _, filename = path.rpartition("/")
        if not mount.get("subPath") and mount["mountPath"].rstrip("/") == parent:
            if items:
                return (configmap["name"], items[filename]) if filename in items else None
            return configmap["name"], filename
    return None


def check_configmap_matches(d: Deploy) -> list[str]:
    settings = _settings(d)
    problems: list[str] = []
    used = set()
    for workload, container in k8s_celestra_containers(d):
        try:
            command = parse_command(k8s_argv(d, container), settings)
        except ValueError:
            continue
        path = command.config or _k8s_env(container).get("CELESTRA_CONFIG")
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        source = _configmap_source(container, volumes, path) if path else None
        if source:
            used.add(source)
    if not used:
        problems.append("no Celestra pod mounts a ConfigMap as its settings file")
    configmaps = {doc["metadata"]["name"]: doc for doc in k8s_objects(d, "ConfigMap")}
    for name, key in sorted(used):
        text = (configmaps.get(name, {}).get("data") or {}).get(key)
        if text is None:
            problems.append(f"ConfigMap {name} has no key {key}")
        elif yaml.safe_load(text) != d.config:
            problems.append(f"ConfigMap {name} key {key} differs from deploy/celestra.yaml")
    return problems


# -- the real files pass every check --------------------------------------------------------------------------------
def test_every_yaml_file_parses() -> None:
    assert check_yaml_parses() == []


def test_config_is_valid_settings(deploy: Deploy) -> None:
    assert check_config_valid(deploy) == []


def test_commands_are_celestra_commands(deploy: Deploy) -> None:
    assert check_commands(deploy) == []


def test_every_worker_serves_a_declared_group_and_every_group_has_workers(deploy: Deploy) -> None:
    assert check_worker_groups(deploy) == []


def test_worker_group_labels_name_the_group(deploy: Deploy) -> None:
    assert check_group_labels(deploy) == []


def test_compose_mounts_the_config_the_commands_read(deploy: Deploy) -> None:
    assert check_compose_mounts(deploy) == []


def test_compose_builds_the_dockerfile_from_the_root(deploy: Deploy) -> None:
    assert check_compose_build(deploy) == []


def test_compose_waits_for_healthy_broker_and_database(deploy: Deploy) -> None:
    assert check_compose_depends_on(deploy) == []


def test_flower_port_and_auth(deploy: Deploy) -> None:
    assert check_flower(deploy) == []


def test_dockerfile_installs_the_project_and_runs_celestra(deploy: Deploy) -> None:
    assert check_dockerfile(deploy) == []


def test_k8s_objects_and_kustomization(deploy: Deploy) -> None:
    assert check_k8s_objects(deploy) == []


def test_k8s_selectors_match_labels_and_ports(deploy: Deploy) -> None:
    assert check_k8s_selectors(deploy) == []


def test_k8s_pods_mount_config_and_storage(deploy: Deploy) -> None:
    assert check_k8s_mounts(deploy) == []


def test_k8s_configmap_equals_celestra_yaml(deploy: Deploy) -> None:
    assert check_configmap_matches(deploy) == []


# -- and each check fails on files broken in the way it looks for -----------------------------------------------------
def _service(d: Deploy, name: str) -> dict[str, Any]:
    return d.compose["services"][name]


def _workload(d: Deploy, name: str) -> dict[str, Any]:
    return next(doc for _, doc in d.k8s if doc.get("metadata", {}).get("name") == name
                and doc.get("kind") in WORKLOAD_KINDS)


def _container(d: Deploy, name: str) -> dict[str, Any]:
    return pod_spec(_workload(d, name))["containers"][0]


def _k8s_service(d: Deploy, name: str) -> dict[str, Any]:
    return next(doc for doc in k8s_objects(d, "Service") if doc["metadata"]["name"] == name)


def _replace_in_dockerfile(old: str, new: str) -> Callable[[Deploy], None]:
    def mutate(d: Deploy) -> None:
        assert old in d.dockerfile
        d.dockerfile = d.dockerfile.replace(old, new)

    return mutate


def _set_label(d: Deploy) -> None:
    _workload(d, "celestra-worker-gpu")["spec"]["selector"]["matchLabels"][GROUP_LABEL] = "gpus"


def _drop_config_volume(d: Deploy) -> None:
    service = _service(d, "server")
    service["volumes"] = [v for v in service["volumes"] if "celestra.yaml" not in str(v)]


def _drop_celery_env(d: Deploy) -> None:
    _service(d, "worker")["environment"] = {}


def _drop_storage_mount(d: Deploy) -> None:
    container = _container(d, "celestra-worker-default")
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "storage"]


def _configmap_differs(d: Deploy) -> None:
    configmap = next(doc for doc in k8s_objects(d, "ConfigMap"))
    configmap["data"]["celestra.yaml"] = configmap["data"]["celestra.yaml"].replace("redis:6379/0", "redis:6379/1")


def _k8s_config_elsewhere(d: Deploy) -> None:
    _container(d, "celestra-server")["command"][-1] = "/etc/other/celestra.yaml"


def _flower_port(d: Deploy) -> None:
    command = _service(d, "flower")["command"]
    command[command.index("--port=5555")] = "--port=5556"


def _k8s_service_port(d: Deploy) -> None:
    _k8s_service(d, "celestra-flower")["spec"]["ports"][0]["targetPort"] = 8080


def _no_flower_auth(d: Deploy) -> None:
    del _service(d, "flower")["environment"][FLOWER_AUTH_ENV]


def _flower_default_credential(d: Deploy) -> None:
    _service(d, "flower")["environment"][FLOWER_AUTH_ENV] = "${CELESTRA_FLOWER_BASIC_AUTH:-celestra:celestra}"


def _flower_literal_credential(d: Deploy) -> None:
    _service(d, "flower")["environment"][FLOWER_AUTH_ENV] = "celestra:celestra"


def _flower_legacy_env(d: Deploy) -> None:
    _service(d, "flower")["environment"]["FLOWER_BASIC_AUTH"] = "${FLOWER_BASIC_AUTH:-celestra:celestra}"


def _flower_no_auth(d: Deploy) -> None:
    _container(d, "celestra-flower")["command"].append("--no-auth")


def _flower_on_loopback(d: Deploy) -> None:
    command = _service(d, "flower")["command"]
    command.remove("--address=0.0.0.0")


def _k8s_flower_on_loopback(d: Deploy) -> None:
    _container(d, "celestra-flower")["command"].append("--address=127.0.0.1")


def _plain_celery_flower(d: Deploy) -> None:
    _service(d, "flower")["command"] = ["celery", "-A", "app", "flower", "--port=5555", "--address=0.0.0.0"]


def _k8s_inline_credential(d: Deploy) -> None:
    env = next(e for e in _container(d, "celestra-flower")["env"] if e["name"] == FLOWER_AUTH_ENV)
    env.pop("valueFrom")
    env["value"] = "celestra:celestra"


def _k8s_optional_secret(d: Deploy) -> None:
    env = next(e for e in _container(d, "celestra-flower")["env"] if e["name"] == FLOWER_AUTH_ENV)
    env["valueFrom"]["secretKeyRef"]["optional"] = True


def _k8s_shipped_secret(d: Deploy) -> None:
    d.k8s.append(("flower.yaml", {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "celestra-flower", "namespace": "celestra"}, "stringData": {"basic-auth": "celestra:celestra"}}))


def _credential_in_config(d: Deploy) -> None:
    d.config["flower_basic_auth"] = "celestra:celestra"


def _unhealthy_wait(d: Deploy) -> None:
    _service(d, "server")["depends_on"]["postgres"]["condition"] = "service_started"


def _undeclared_queue(d: Deploy) -> None:
    _service(d, "worker")["command"][5] = "cpu"


def _group_without_worker(d: Deploy) -> None:
    d.config["worker_groups"]["windows"] = {"description": "Windows hosts"}


def _bad_option(d: Deploy) -> None:
    _container(d, "celestra-worker-gpu")["command"][2] = "--wrker-group"


def _not_celestra(d: Deploy) -> None:
    _service(d, "server")["command"] = ["python", "-m", "app.services.timers"]


def _unknown_setting(d: Deploy) -> None:
    d.config["brokr_url"] = "redis://redis:6379/0"


def _undeclared_namespace_group(d: Deploy) -> None:
    d.config["namespaces"]["company.team"]["worker_group"]["key"] = "tpu"


def _missing_kustomize_resource(d: Deploy) -> None:
    d.kustomization["resources"].remove("worker-gpu.yaml")


def _wrong_namespace(d: Deploy) -> None:
    _workload(d, "celestra-server")["metadata"]["namespace"] = "default"


def _wrong_build_context(d: Deploy) -> None:
    _service(d, "worker")["build"]["context"] = "."


def _mislabelled_group(d: Deploy) -> None:
    workload = _workload(d, "celestra-worker-gpu")
    for labels in (workload["spec"]["selector"]["matchLabels"], workload["spec"]["template"]["metadata"]["labels"]):
        labels[GROUP_LABEL] = "default"


def _overlapping_selector(d: Deploy) -> None:
    workload = _workload(d, "celestra-worker-gpu")
    del workload["spec"]["selector"]["matchLabels"][GROUP_LABEL]


BREAKAGES: list[tuple[str, Callable[[Deploy], list[str]], Callable[[Deploy], None]]] = [
    ("unknown setting", check_config_valid, _unknown_setting),
    ("namespace on undeclared group", check_config_valid, _undeclared_namespace_group),
    ("command not celestra", check_commands, _not_celestra),
    ("unknown celestra option", check_commands, _bad_option),
    ("worker on undeclared queue", check_worker_groups, _undeclared_queue),
    ("declared group without worker", check_worker_groups, _group_without_worker),
    ("group label names another group", check_group_labels, _mislabelled_group),
    ("config not mounted", check_compose_mounts, _drop_config_volume),
    ("celery worker without CELESTRA_CONFIG", check_compose_mounts, _drop_celery_env),
    ("build context not the root", check_compose_build, _wrong_build_context),
    ("waits for started, not healthy", check_compose_depends_on, _unhealthy_wait),
    ("flower port not published", check_flower, _flower_port),
    ("flower without auth", check_flower, _no_flower_auth),
    ("flower credential with a default", check_flower, _flower_default_credential),
    ("flower credential as a literal", check_flower, _flower_literal_credential),
    ("flower legacy FLOWER_BASIC_AUTH", check_flower, _flower_legacy_env),
    ("flower --no-auth", check_flower, _flower_no_auth),
    ("flower bound to the loopback (compose)", check_flower, _flower_on_loopback),
    ("flower bound to the loopback (kubernetes)", check_flower, _k8s_flower_on_loopback),
    ("plain celery flower", check_flower, _plain_celery_flower),
    ("flower credential inline in kubernetes", check_flower, _k8s_inline_credential),
    ("flower secret optional", check_flower, _k8s_optional_secret),
    ("flower secret shipped", check_flower, _k8s_shipped_secret),
    ("flower credential in celestra.yaml", check_flower, _credential_in_config),
    ("service targetPort wrong", check_flower, _k8s_service_port),
    ("service targetPort no container port", check_k8s_selectors, _k8s_service_port),
    ("selector does not match labels", check_k8s_selectors, _set_label),
    ("selectors overlap", check_k8s_selectors, _overlapping_selector),
    ("object in another namespace", check_k8s_objects, _wrong_namespace),
    ("kustomization misses a file", check_k8s_objects, _missing_kustomize_resource),
    ("storage not mounted", check_k8s_mounts, _drop_storage_mount),
    ("config path not mounted", check_k8s_mounts, _k8s_config_elsewhere),
    ("configmap differs", check_configmap_matches, _configmap_differs),
    ("no pip install", check_dockerfile, _replace_in_dockerfile(f"pip install '.[{ALL_EXTRAS}]'", "true")),
    ("missing extra", check_dockerfile, _replace_in_dockerfile(f".[{ALL_EXTRAS}]", ".[postgres]")),
    ("package not copied", check_dockerfile, _replace_in_dockerfile("COPY workers/ workers/\n", "")),
    ("broad copy", check_dockerfile, _replace_in_dockerfile("COPY app/ app/", "COPY . .")),
    ("runs as root", check_dockerfile, _replace_in_dockerfile("USER celestra", "USER root")),
    ("wrong base", check_dockerfile, _replace_in_dockerfile("FROM python:3.11-slim", "FROM python:3.12")),
    ("cmd not celestra", check_dockerfile, _replace_in_dockerfile('CMD ["celestra", "server"]', 'CMD ["bash"]')),
]


@pytest.mark.parametrize(("check", "breakage"), [(c, b) for _, c, b in BREAKAGES], ids=[n for n, _, _ in BREAKAGES])
def test_check_catches(
    deploy: Deploy, check: Callable[[Deploy], list[str]], breakage: Callable[[Deploy], None]
) -> None:
    broken = copy.deepcopy(deploy)
    assert check(broken) == []
    breakage(broken)
    assert check(broken) != []


def test_yaml_check_catches_a_broken_file(tmp_path: Path) -> None:
    good, broken = yaml_files(), tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed\n")
    assert check_yaml_parses(good) == []
    assert check_yaml_parses([*good, broken]) != []


# -- probes of the server and the workers -------------------------------------------------------------------------
def _node_of(command: Command) -> str | None:
    """The Celery node a server or worker command runs as (its %h left as is); None for other commands."""
    if command.program == "celestra" and command.name == "server":
        return "server@%h"
    if command.program == "celestra" and command.name == "worker":
        return f"{command.params.get('worker_group') or 'default'}@%h"
    if command.program == "celery" and command.name == "worker":
        for i, arg in enumerate(command.extra):
            if arg in ("-n", "--hostname") and i + 1 < len(command.extra):
                return command.extra[i + 1]
        return "celery@%h"
    return None


def _probed_node(command: Command) -> str:
    if command.params.get("role") == "server":
        return "server@%h"
    return command.params.get("node") or f"{command.params.get('worker_group') or 'default'}@%h"


def check_probes(d: Deploy) -> list[str]:
    """Every server and worker is probed by `celestra probe` for its own node: liveness without --ready (an outage
    must not restart it), readiness (compose: its healthcheck) with --ready."""
    settings, problems = _settings(d), []

    def probe_problems(where: str, node: str, argv: Any, ready: bool) -> list[str]:
        try:
            probe = parse_command(argv, settings)
        except ValueError as exc:
            return [f"{where}: {exc}"]
        if probe.name != "probe":
            return [f"{where}: {shlex.join(argv)!r} is not `celestra probe`"]
        found = []
        if _probed_node(probe) != node:
            found.append(f"{where}: probes {_probed_node(probe)}, the process runs as {node}")
        if bool(probe.params.get("ready")) != ready:
            found.append(f"{where}: {'needs' if ready else 'must not take'} --ready")
        return found

    for workload, container in k8s_celestra_containers(d):
        node = _node_of(parse_command(k8s_argv(d, container), settings))
        if node is None:
            continue
        for kind, ready in (("readinessProbe", True), ("livenessProbe", False)):
            argv = container.get(kind, {}).get("exec", {}).get("command")
            if argv is None:
                problems.append(f"{_wname(workload)}: no {kind} running `celestra probe`")
            else:
                problems += probe_problems(f"{_wname(workload)} {kind}", node, argv, ready)
    for name, service in d.compose["services"].items():
        if "command" not in service or (node := _node_of(parse_command(service["command"], settings))) is None:
            continue
        test = service.get("healthcheck", {}).get("test")
        if not isinstance(test, list) or test[:1] != ["CMD"]:
            problems.append(f"compose {name}: no healthcheck [\"CMD\", \"celestra\", \"probe\", ...]")
        else:
            problems += probe_problems(f"compose {name} healthcheck", node, test[1:], True)
    return problems


def test_servers_and_workers_are_probed_for_their_own_node(deploy: Deploy) -> None:
    assert check_probes(deploy) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: _container(d, "celestra-worker-gpu").pop("livenessProbe"), "no livenessProbe"),
    (lambda d: _container(d, "celestra-worker-gpu")["readinessProbe"]["exec"]["command"].__setitem__(
        slice(None), ["celestra", "probe", "worker", "--ready"]), "probes default@%h, the process runs as gpu@%h"),
    (lambda d: _container(d, "celestra-server")["livenessProbe"]["exec"]["command"].append("--ready"),
     "must not take --ready"),
    (lambda d: _service(d, "worker").pop("healthcheck"), "compose worker: no healthcheck"),
], ids=["no-liveness", "wrong-node", "liveness-ready", "compose-none"])
def test_probe_check_catches(deploy: Deploy, mutate: Callable[[Deploy], Any], expected: str) -> None:
    broken = copy.deepcopy(deploy)
    mutate(broken)
    assert any(expected in problem for problem in check_probes(broken)), check_probes(broken)
