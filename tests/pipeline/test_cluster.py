"""The training stage on a running Ray cluster: `ray job submit` against a head this test starts,
and a two-node cluster simulated with Ray's own cluster utilities (one CPU per node)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, tiny_params_raw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """`ray start --head --block` in its own process group, ended by its handle (never `ray stop`)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    port, dash = _free_port(), _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    temp_dir = Path("/tmp") / f"lznray{os.getpid()}"  # short: Ray's socket paths are length-limited
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--port={port}", "--num-cpus=2", "--include-dashboard=true",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ray head exited: {proc.stdout.read().decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", dash), timeout=1):
                    break
            except OSError:
                time.sleep(1)
        else:
            raise RuntimeError("ray head did not start its dashboard in time")
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.ray
def test_ray_job_submit_runs_the_training_stage(ray_head, project):
    (project / "params.yaml").write_text(json.dumps(tiny_params_raw()))
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ADDRESS=ray_head)
    r = subprocess.run(
        [
            sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", ray_head,
            "--working-dir", str(REPO), "--",
            "python", "stages/train.py", "--experiment", "rf", "--root", str(project),
        ],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "succeeded" in r.stdout
    config = json.loads((project / "models" / "rf" / "seed_0" / "config.json").read_text())
    assert config["steps"] == 4


@pytest.mark.ray
def test_two_node_cluster_one_worker_per_node(project):
    import ray
    from ray.cluster_utils import Cluster

    from pipeline.params import validate_params
    from pipeline.train.driver import train_experiment

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": True})
    cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        raw = tiny_params_raw(iterations=4, **{"train.cpus_per_worker": 1.0})
        train_experiment(validate_params(raw), raw, "rf", project)
        (run_dir,) = [p for p in (project / "ray_results").iterdir() if p.is_dir()]
        infos = [json.loads((run_dir / "workers" / f"rank_{r}.json").read_text()) for r in (0, 1)]
        assert infos[0]["node_id"] != infos[1]["node_id"]  # one worker on each node
        keys0, keys1 = set(infos[0]["keys"]), set(infos[1]["keys"])
        assert len(keys0) == len(keys1) == 4 * 8  # 4 steps x 8 samples per rank
        assert not keys0 & keys1
        # each rank read its own share of the shards: no shard feeds both ranks
        manifest = json.loads((project / "data" / "shards" / "manifest.json").read_text())
        shard_of = {}
        import tarfile

        for entry in manifest["splits"]["train"]["shards"]:
            with tarfile.open(project / "data" / "shards" / entry["path"]) as tar:
                for name in tar.getnames():
                    shard_of[name.split(".")[0]] = entry["path"]
        assert not {shard_of[k] for k in keys0} & {shard_of[k] for k in keys1}
    finally:
        ray.shutdown()
        cluster.shutdown()
