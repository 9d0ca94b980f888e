"""pipeline/report/inputs.py: reading and validating the reports and the published numbers."""

import pytest
from report_support import ROOT, fixture_reports, row, write_reports

from pipeline.errors import DataError
from pipeline.report import inputs
from pipeline.report.compare import DASH
from pipeline.report.tables import build_paper_tables


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"fid": 1.0,', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"fid": {"mean": 1.0}}', "flat JSON object.*'fid'"),
        ('{"fid": "low"}', "'fid' must be a number"),
        ('{"accuracy_tuned": 94.47}', "'accuracy_tuned' must be a fraction in \\[0, 1\\]"),
    ],
)
def test_malformed_report_names_the_file(tmp_path, text, match):
    write_reports(tmp_path, fixture_reports())
    (tmp_path / "lzn_joint.json").write_text(text)
    with pytest.raises(DataError, match=match) as err:
        build_paper_tables(tmp_path)
    assert "lzn_joint.json" in str(err.value)


def test_paper_numbers_come_from_the_project_copy(tmp_path):
    assert inputs.PAPER_RESULTS == ROOT / "pipeline" / "report" / "paper_results.yaml"
    paper = inputs.load_paper_results()
    assert paper["table1_unconditional_generation"]["cifar10"]["rf_lzn"]["fid"] == 2.59
    # a custom (here: empty) paper mapping renders the paper columns as "–"
    md, _ = build_paper_tables(write_reports(tmp_path, fixture_reports()), paper={})
    assert row(md, "## Table 1", "RF")[1:3] == ["12.35 ± 0.50", DASH]


def test_missing_reports_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"missing: reports folder not found"):
        build_paper_tables(tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "match"),
    [("a: [1,", "not valid YAML"), ("[1, 2]", "expected a mapping at the top level")],
)
def test_malformed_paper_results_name_the_file(tmp_path, text, match):
    path = tmp_path / "paper_results.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        inputs.load_paper_results(path)
    assert "paper_results.yaml" in str(err.value) and "\n" not in str(err.value)


def test_undecodable_report_and_broken_sweep_name_the_file(tmp_path):
    write_reports(tmp_path, fixture_reports())
    (tmp_path / "sweep.json").write_text("{x")
    with pytest.raises(DataError, match=r"sweep\.json: not valid JSON"):
        build_paper_tables(tmp_path)
    (tmp_path / "sweep.json").unlink()
    (tmp_path / "rf.json").write_bytes(b'{"fid": "\xff"}')
    with pytest.raises(DataError, match=r"rf\.json: not valid JSON"):
        build_paper_tables(tmp_path)
