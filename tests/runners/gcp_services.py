"""The services the GCP Batch runner tests run against: gcp-storage-emulator (GCS) on a free port, and
tests/runners/gcp_fake.py (Batch + Logging, running containers on the Docker engine of DOCKER_HOST).

`running_services()` starts both, points the runner at them through its endpoint environment variables
(CELESTRA_GCP_BATCH_ENDPOINT, CELESTRA_GCP_LOGGING_ENDPOINT, CELESTRA_GCP_STORAGE_ENDPOINT) and restores the
environment afterwards. It raises `Unavailable` when a package, the engine or the test image is missing, so the
caller can skip locally and fail in CI.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

SHELL_IMAGE = "celestra/busybox:local"
BUCKET = "celestra-test"
PROJECT, REGION = "celestra-test", "europe-west1"


class Unavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Services:
    def __init__(self, fake: Any, storage_url: str, docker_client: Any):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.fake, self.storage_url, self.docker = fake, storage_url, docker_client
        self.gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                                  client_options={"api_endpoint": storage_url})

    def blobs(self, prefix: str = "") -> list[str]:
        return [blob.name for blob in self.gcs.list_blobs(BUCKET, prefix=prefix)]

    def delete_prefix(self, prefix: str) -> None:
        for blob in self.gcs.list_blobs(BUCKET, prefix=prefix):
            blob.delete()


@contextlib.contextmanager
def running_services() -> Iterator[Services]:
    try:
        import docker
        import google.cloud.batch_v1  # noqa: F401
        import google.cloud.logging  # noqa: F401
        import google.cloud.storage  # noqa: F401
        from gcp_storage_emulator.server import create_server
    except ImportError as exc:
        raise Unavailable(f"{exc} (pip install google-cloud-batch google-cloud-logging google-cloud-storage "
                          "gcp-storage-emulator docker)") from exc
    try:
        engine = docker.from_env()
        engine.ping()
        engine.images.get(SHELL_IMAGE)
    except Exception as exc:
        raise Unavailable(f"no Docker engine with {SHELL_IMAGE} (run .ci/start-dockerd and deploy/images/build.sh): "
                          f"{exc}") from exc
    from gcp_fake import GcpFake

    saved = dict(os.environ)
    os.environ["DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"] = "true"  # no background bucket request
    port = free_port()
    emulator = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    emulator.start()
    storage_url = f"http://127.0.0.1:{port}"
    fake = GcpFake(storage_url, engine).start()
    os.environ.update(CELESTRA_GCP_BATCH_ENDPOINT=fake.batch_url, CELESTRA_GCP_LOGGING_ENDPOINT=fake.logging_url,
                      CELESTRA_GCP_STORAGE_ENDPOINT=storage_url)
    try:
        yield Services(fake, storage_url, engine)
    finally:
        fake.stop()
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved)
