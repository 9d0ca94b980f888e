"""The `shard` DVC stage: default run, and one-line errors with nothing half-written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "stages" / "shard.py"


def params_file(tmp_path: Path, **shard) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["shard"].update(shard)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def load_main():
    spec = importlib.util.spec_from_file_location("stage_shard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_default_params_from_repo_root_layout(tmp_path):
    """`python stages/shard.py` with no arguments: params.yaml in the working directory -> data/shards."""
    params_file(tmp_path)
    proc = run_stage(tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "data" / "shards"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 1437, "test": 360} and manifest["image_shape"] == [1, 8, 8]
    assert sorted(p.name for p in (out / "train").glob("*.tar")) == [f"train-{i:06d}.tar" for i in range(6)]
    assert sorted(p.name for p in (out / "test").glob("*.tar")) == ["test-000000.tar", "test-000001.tar"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["shards"]  # no temp folder left
    assert "digits" in proc.stderr


def test_bad_input_exits_with_one_line_and_no_traceback(tmp_path):
    proc = run_stage(
        tmp_path,
        "--params",
        str(params_file(tmp_path, source="cifar10", path="missing.tar.gz")),
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "missing.tar.gz" in lines[0] and "cifar-10-python.tar.gz" in lines[0]
    assert not (tmp_path / "out").exists()


def stage_error(capsys, tmp_path, **shard) -> str:
    """Run the stage in-process (faster than a subprocess); return its stderr after a failed run."""
    main = load_main()
    argv = ["--params", str(params_file(tmp_path, **shard)), "--out", str(tmp_path / "out"), "--no-progress"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert not (tmp_path / "out").exists()
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("shard", "needle"),
    [
        ({"source": "mnist"}, "shard.source"),
        ({"shard_size": 0}, "shard.shard_size"),
        ({"test_fraction": 1.5}, "shard.test_fraction"),
        ({"source": "imagefolder", "path": "nowhere"}, "nowhere: folder not found"),
        ({"source": "imagefolder", "path": ""}, "shard.path: required"),
    ],
)
def test_errors_name_the_key_or_file(tmp_path, capsys, shard, needle):
    err = stage_error(capsys, tmp_path, **shard)
    assert needle in err and err.count("\n") == 1 and err.startswith("shard: error:")


def test_empty_class_folder(tmp_path, capsys):
    (tmp_path / "img" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "img" / "test").mkdir()
    err = stage_error(capsys, tmp_path, source="imagefolder", path=str(tmp_path / "img"))
    assert "train/cat: empty class folder" in err


def test_missing_params_file(tmp_path, capsys):
    main = load_main()
    with pytest.raises(SystemExit):
        main(["--params", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")])
    assert "nope.yaml: params file not found" in capsys.readouterr().err
