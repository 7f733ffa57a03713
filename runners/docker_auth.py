"""Registry credentials of the Docker runner: which auth, if any, goes with the pull of an image.

As in Kestra, `credentials` belong to one registry (`credentials.registry`, else the image's own) and `config` is a
Docker config.json (its `auths`, `credsStore`, `credHelpers`); the entry for the image's registry is used, the
explicit credentials first. docker-py resolves registry names the way the Docker CLI does (Docker Hub's aliases,
schemes and paths stripped); the engine only reads a user name and password, so an `auth` string
(base64 of user:password) is decoded here, as the CLI does.
"""

from __future__ import annotations

import json
from typing import Any

from docker import auth as docker_auth
from docker.errors import DockerException
from pydantic import BaseModel, ConfigDict

from runners.base import RunnerError


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registry: str | None = None
    username: str | None = None
    password: str | None = None
    auth: str | None = None
    identityToken: str | None = None
    registryToken: str | None = None


def registry_auth(image: str, credentials: Credentials | None,
                  config: dict[str, Any] | str | None) -> dict[str, Any] | None:
    """The X-Registry-Auth content for pulling `image`, or None: the engine pulls anonymously (or with the
    worker's own ~/.docker/config.json, which docker-py reads when no auth is given)."""
    try:
        registry, _ = docker_auth.resolve_repository_name(image)
    except DockerException as exc:
        raise RunnerError(f"Invalid image name '{image}': {exc}") from exc
    if credentials is not None and _same_registry(credentials.registry, registry):
        return _from_credentials(credentials, registry)
    if config:
        return _from_config(config, registry)
    return None


def _same_registry(declared: str | None, registry: str) -> bool:
    if declared is None:  # credentials for the image's own registry
        return True
    return docker_auth.resolve_index_name(docker_auth.convert_to_hostname(declared)) == registry


def _from_credentials(creds: Credentials, registry: str) -> dict[str, Any]:
    username, password = creds.username, creds.password
    if creds.auth and username is None:
        try:
            username, password = docker_auth.decode_auth(creds.auth)
        except ValueError as exc:
            raise RunnerError("Docker credentials `auth` must be base64 of 'username:password'") from exc
    found = {"username": username, "password": password, "identitytoken": creds.identityToken,
             "registrytoken": creds.registryToken, "serveraddress": creds.registry or registry}
    return {key: value for key, value in found.items() if value is not None}


def _from_config(config: dict[str, Any] | str, registry: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(config) if isinstance(config, str) else dict(config)
    except ValueError as exc:
        raise RunnerError(f"Docker `config` is not a JSON document: {exc}") from exc
    if not isinstance(parsed, dict):
        raise RunnerError("Docker `config` must be a JSON object, as in ~/.docker/config.json")
    try:
        found = docker_auth.AuthConfig.load_config(None, parsed).resolve_authconfig(registry)
    except DockerException as exc:  # a broken entry or a credential helper that is not installed
        raise RunnerError(f"Docker `config` gives no usable credentials for {registry}: {exc}") from exc
    if not found:
        return None
    return {key: value for key, value in {
        "username": found.get("username") or found.get("Username"),
        "password": found.get("password") or found.get("Password"),
        "identitytoken": found.get("IdentityToken"), "serveraddress": registry}.items() if value}
