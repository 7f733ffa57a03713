"""The seed flow `myflow` distributed: its Python command, from a namespace file, runs on a worker of its group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from groups_support import GroupsCluster, fresh_redis_database, groups_cluster

from app.model.states import State

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupsCluster]:
    with fresh_redis_database() as broker, \
            groups_cluster(broker, postgres_server.create_database(), tmp_path_factory.mktemp("myflow")) as groups:
        groups.start_worker("myWorkerGroupKey")
        groups.wait_live(groups.node("myWorkerGroupKey"))
        yield groups


def test_myflow_runs_its_namespace_file_on_its_worker_group(cluster: GroupsCluster) -> None:
    result = cluster.celestra("namespace-files", "upload", "company.team", ROOT / "flows/namespace-files/company.team")
    assert result.returncode == 0, result.stderr
    assert "kestra:///company/team/_files/ml_on_gpu.py" in result.stdout
    ex = cluster.client.run(ROOT / "flows/myflow.yaml", timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    run = ex.task_runs[0]
    assert run.worker_group == "myWorkerGroupKey"
    assert run.worker == cluster.node("myWorkerGroupKey")
    assert run.outputs["vars"]["accuracy"] == 0.93
    assert any(m.startswith("training on ") for m in cluster.log_messages(ex.id, "INFO"))
