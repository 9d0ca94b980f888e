"""pipeline/report/merge.py: merging the evaluation stages' partial reports into reports/<name>.json."""

import json

import pytest

from pipeline.errors import DataError
from pipeline.report.merge import merge_reports, write_merged


def _write(reports, part, name, data):
    (reports / part).mkdir(parents=True, exist_ok=True)
    (reports / part / f"{name}.json").write_text(json.dumps(data))


def test_merge_keeps_each_stage_description_and_shared_keys(tmp_path):
    _write(tmp_path, "probe", "lzn_joint", {"experiment": "lzn_joint", "protocol": "linear probe", "top1": 0.9,
                                            "test_count": 360, "seed_count": 2, "per_seed": {"0": {}}})
    _write(tmp_path, "classify", "lzn_joint", {"experiment": "lzn_joint", "protocol": "reverse flow",
                                               "method": "LZN", "accuracy_default": 0.8, "test_count": 360,
                                               "seed_count": 1})
    _write(tmp_path, "fid", "lzn_joint", {"experiment": "lzn_joint", "fid": 12.5, "seed_count": 2})
    merged = merge_reports(tmp_path)["lzn_joint"]
    assert merged == {
        "experiment": "lzn_joint", "probe_protocol": "linear probe", "classify_protocol": "reverse flow",
        "classify_method": "LZN", "top1": 0.9, "accuracy_default": 0.8, "fid": 12.5, "test_count": 360,
        "seed_count": 1,  # the seeds every stage evaluated
    }
    (path,) = write_merged(tmp_path)
    assert json.loads(path.read_text()) == merged and path.name == "lzn_joint.json"
    # DVC metrics format: indented, keys sorted, a final newline; no temporary file left behind
    assert path.read_text() == json.dumps(merged, indent=2, sort_keys=True) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classify", "fid", "lzn_joint.json", "probe"]


def test_merge_refuses_disagreeing_metrics_naming_both_files(tmp_path):
    _write(tmp_path, "probe", "rf_lzn", {"test_count": 360})
    _write(tmp_path, "fid", "rf_lzn", {"test_count": 359})
    with pytest.raises(DataError, match=r"fid/rf_lzn\.json: test_count=359 disagrees with .*probe/rf_lzn\.json: 360"):
        merge_reports(tmp_path)
    assert not (tmp_path / "rf_lzn.json").exists()


def test_merge_refuses_a_broken_file(tmp_path):
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "simclr.json").write_text("{not json")
    with pytest.raises(DataError, match=r"probe/simclr\.json: not valid JSON"):
        merge_reports(tmp_path)


def test_merge_refuses_a_report_that_is_not_an_object(tmp_path):
    (tmp_path / "fid").mkdir()
    (tmp_path / "fid" / "rf.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"fid/rf\.json: expected a JSON object, got list"):
        merge_reports(tmp_path)
