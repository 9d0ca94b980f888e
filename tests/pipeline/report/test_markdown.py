"""pipeline/report/markdown.py: paper_tables.md — units, precision of mean ± std, the header notes."""

import pytest
from report_support import fixture_reports, row, section, write_reports

from pipeline.report.tables import build_paper_tables


def test_std_printed_at_the_value_precision_and_tuned_alpha_per_seed(tmp_path):
    reports = fixture_reports()
    reports["rf"].update(inception_score_std=0.0534, recon_error=0.0144, recon_error_std=0.00210)
    reports["lzn_joint"].update(tuned_alpha=0.0666667, tuned_alpha_std=0.0942809)
    md, _ = build_paper_tables(write_reports(tmp_path, reports))
    rf = row(md, "## Table 1", "RF")
    assert rf[3] == "4.10 ± 0.05" and rf[9] == "0.0144 ± 0.0021"
    (tuned,) = [line for line in section(md, "## Table 3").splitlines() if "| tuned" in line]
    assert "tuned (batch 300, α chosen per seed, mean 0.067)" in tuned


def test_one_seed_shows_no_std(tmp_path):
    reports = fixture_reports()
    for metrics in reports.values():
        metrics["seed_count"] = 1
        metrics.update({f"{k}_std": 0.0 for k in list(metrics) if k in ("fid", "probe_top1")})
    md, result = build_paper_tables(write_reports(tmp_path, reports))
    assert row(md, "## Table 1", "RF")[1] == "12.35"  # not "12.35 ± 0.00": one seed measures no noise
    assert row(md, "## Table 2", "LZN")[1] == "92.00"
    assert result["table1"]["direction"]["fid"]["within_one_std"] is None


def test_probe_and_accuracy_shown_in_percent(tmp_path):
    md, result = build_paper_tables(write_reports(tmp_path, fixture_reports()))
    assert row(md, "## Table 2", "SimCLR") == ["SimCLR", "90.00", "69.3", "99.00", "89.0"]
    assert row(md, "## Table 2", "LZN") == ["LZN", "92.00 ± 1.00", "69.5", "99.50", "89.3"]
    t3 = section(md, "## Table 3")
    assert "| Supervised (same encoder, cross-entropy) | – | 94.00 | 93.02 | ResNet18 (Table 3) |" in t3
    assert "| RF+LZN joint | default (α = 1) | 90.00 | 91.57 | Fig. 25, batch 2000, α 1.0 |" in t3
    assert (
        "| RF+LZN joint | tuned (batch 300, α 0.4) | 94.47 | 94.47 | "
        "Table 3 RF+LZN (best Fig. 25 cell: batch 10000, α 0.4) |" in t3
    )
    rows = result["table3"]["rows"]
    assert rows["lzn_joint_tuned"]["value"] == pytest.approx(94.47)
    assert rows["lzn_joint_default"]["paper"] == 91.57
    assert result["units"]["accuracy"] == "percent"


def test_header_states_dataset_scale_and_feature_network(tmp_path):
    md, _ = build_paper_tables(write_reports(tmp_path, fixture_reports()))
    head = md.split("## Table 1")[0]
    assert "Dataset: digits 8x8" in head
    assert "Generated samples per evaluation: 1000" in head
    assert "Seeds per experiment: 3" in head
    for table in ("## Table 1", "## Table 4"):
        part = section(md, table)
        assert "Feature network of this run: `digits-resnet`" in part
        assert (
            "not comparable to the paper's Inception-based values when the feature network differs" in part
        )
        assert "compare directions, not values" in part
        assert "Warning" not in part
    reports = fixture_reports()
    reports["rf"]["feature_network"] = "inception-v3"
    md, _ = build_paper_tables(write_reports(tmp_path, reports))
    assert "Warning: RF and RF+LZN were evaluated with different feature networks" in section(
        md, "## Table 1"
    )
