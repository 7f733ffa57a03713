"""Internal storage on S3 (moto's server, the real boto3 client): a script's output file lands in the bucket and a
later task reads it back through inputFiles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from app.model.states import State

pytestmark = pytest.mark.integration

FLOW = """
id: s3_files
namespace: company.team
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [report.txt]
    commands:
      - echo "42 rows" > report.txt
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      copy.txt: "{{ outputs.write.outputFiles['report.txt'] }}"
    commands:
      - cat copy.txt
"""


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    import boto3  # dev dependencies (celestra[dev]): a missing one is an error, not a skip
    from moto import server as moto_server

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "CELESTRA_S3_ENDPOINT_URL")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "CELESTRA_S3_ENDPOINT_URL": endpoint})
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="celestra-it")
    try:
        yield endpoint, client
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_output_files_go_to_s3_and_come_back(s3: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    from groups_support import configured_client  # the runtime is process-wide: restored for later tests

    from app.settings import Settings

    _, bucket = s3
    with configured_client(Settings(home=tmp_path_factory.mktemp("s3"), storage_url="s3://celestra-it/internal")) \
            as client:
        check_round_trip(client, bucket)


def check_round_trip(client: Any, bucket: Any) -> None:
    ex = client.run(FLOW, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    uri = ex.task_runs[0].outputs["outputFiles"]["report.txt"]
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="celestra-it").get("Contents", [])]
    assert any(k.startswith("internal/") and k.endswith("/report.txt") for k in keys), keys
    assert client.download(uri) == b"42 rows\n"
    assert "42 rows" in [row["message"] for row in client.logs(ex.id)]
