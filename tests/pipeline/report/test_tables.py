"""pipeline/report/tables.py: Tables 1-4 as data (cells beside the paper's, directions), and writing them."""

import json
import os

import pytest
from report_support import claim_statuses, fixture_reports, row, section, write_reports

from pipeline.report.compare import DASH
from pipeline.report.inputs import REPORT_NAMES
from pipeline.report.tables import build_paper_tables, write_paper_tables


def test_table1_cells_beside_paper_values(tmp_path):
    md, result = build_paper_tables(write_reports(tmp_path, fixture_reports()))
    header = row(md, "## Table 1", "algo")
    assert header[:3] == ["algo", "FID↓ (run)", "FID↓ (paper)"]
    assert header[-1] == "direction holds?"
    rf = row(md, "## Table 1", "RF")
    lzn = row(md, "## Table 1", "RF+LZN")
    # FID: mean ± std of this run, then the paper's CIFAR10 value
    assert rf[1:3] == ["12.35 ± 0.50", "2.76"]
    assert lzn[1:3] == ["11.20 ± 0.40", "2.59"]
    # IS, precision, recall beside the paper's; recon keeps 3 significant digits below 0.1
    assert rf[3:11] == ["4.10", "9.51", "0.61", "0.70", "0.52", "0.59", "0.0712", "0.83"]
    assert lzn[9:11] == ["0.0310", "0.41"]
    assert rf[-1] == "baseline"
    assert lzn[-1] == "FID: holds; IS: holds; Prec: holds; Rec: holds; Recon: holds"
    assert result["table1"]["rows"]["rf"]["metrics"]["fid"] == {
        "value": 12.3456, "std": 0.5, "key": "fid", "paper": 2.76
    }  # fmt: skip


def test_worse_run_flips_directions(tmp_path):
    md, result = build_paper_tables(write_reports(tmp_path, fixture_reports(rf_lzn_better=False)))
    lzn = row(md, "## Table 1", "RF+LZN")
    # the paper ties on precision (0.70 vs 0.70): RF+LZN 0.60 < RF 0.61 is "worse", so it does not hold
    assert lzn[-1] == "FID: does not hold; IS: holds; Prec: does not hold; Rec: holds; Recon: does not hold"
    direction = result["table1"]["direction"]
    assert direction["fid"] == {
        "better": "lower", "paper": "better", "run": "worse", "status": "does not hold", "within_one_std": False
    }  # fmt: skip
    assert direction["precision"]["paper"] == "tie"


def test_table4_prefers_conditional_fid_and_tuned_accuracy(tmp_path):
    reports = fixture_reports()
    md, _ = build_paper_tables(write_reports(tmp_path, reports))
    cond = row(md, "## Table 4", "RF (conditional)")
    joint = row(md, "## Table 4", "RF+LZN joint")
    assert cond[1:3] == ["9.00", "2.47"]  # fid_conditional, not fid (10.0)
    assert joint[1:3] == ["8.50", "2.40"]
    assert cond[11:13] == [DASH, DASH]
    assert joint[11:13] == ["94.47", "94.47"]
    assert joint[-1] == "FID: holds; IS: holds; Prec: holds; Rec: holds; Recon: holds"
    assert "FID from `fid_conditional`; accuracy from `accuracy_tuned`." in md
    # without fid_conditional / accuracy_tuned: fid and the default protocol
    for name in ("rf_cond", "lzn_joint"):
        reports[name].pop("fid_conditional")
        reports[name]["fid"] = 7.25
    del reports["lzn_joint"]["accuracy_tuned"]
    md, _ = build_paper_tables(write_reports(tmp_path, reports))
    assert row(md, "## Table 4", "RF+LZN joint")[1] == "7.25"
    assert row(md, "## Table 4", "RF+LZN joint")[11] == "90.00"
    assert "accuracy from `accuracy_default`" in md


def test_feature_ablation_rows(tmp_path):
    reports = fixture_reports()
    reports["lzn_repr"].update(
        probe_top1_anchor=0.8, probe_top1_latent_alpha0=0.82, probe_top1_latent_alpha1=0.3
    )
    md, result = build_paper_tables(write_reports(tmp_path, reports))
    t2 = section(md, "## Table 2")
    assert "| backbone (w/o head) | 92.00 ± 1.00 | 65.6 |" in t2
    assert "| latent (α = 1) | 30.00 | 11.9 |" in t2
    assert "| head output (anchor) | 80.00 | 54.9 / 55.9 † |" in t2
    assert claim_statuses(result)["fig19_ranking"] == "holds"
    reports["lzn_repr"]["probe_top1_latent_alpha1"] = 0.95  # the latent beats the backbone
    _, result = build_paper_tables(write_reports(tmp_path, reports))
    assert claim_statuses(result)["fig19_ranking"] == "does not hold"
    assert "Feature-choice ablation" not in build_paper_tables(write_reports(tmp_path / "plain", fixture_reports()))[0]


def test_missing_files_and_keys_render_dash(tmp_path):
    md, result = build_paper_tables(tmp_path)  # no reports at all
    rf = row(md, "## Table 1", "RF")
    assert rf[1:3] == [DASH, "2.76"]
    assert rf[1:11:2] == [DASH] * 5  # every "run" column
    assert rf[2:11:2] == ["2.76", "9.51", "0.70", "0.59", "0.83"]  # paper columns still shown
    assert set(claim_statuses(result).values()) == {"not measured"}
    assert "Missing reports (shown as –): rf.json, rf_lzn.json" in md
    assert row(md, "## Table 1", "RF+LZN")[-1] == (
        "FID: not measured; IS: not measured; Prec: not measured; Rec: not measured; Recon: not measured"
    )
    # one file, one key missing
    reports = fixture_reports()
    del reports["rf_lzn"]
    del reports["rf"]["inception_score"]
    md, result = build_paper_tables(write_reports(tmp_path / "partial", reports))
    assert row(md, "## Table 1", "RF")[3:5] == [DASH, "9.51"]
    assert row(md, "## Table 1", "RF+LZN")[1] == DASH
    assert claim_statuses(result)["t1_fid"] == "not measured"
    assert claim_statuses(result)["t4_fid"] == "holds"
    assert "rf_lzn.json" in md.split("## Table 1")[0]


def test_sweep_summary_only_when_present(tmp_path):
    write_reports(tmp_path, fixture_reports())
    assert "## Sweep" not in build_paper_tables(tmp_path)[0]
    (tmp_path / "sweep.json").write_text(
        json.dumps({"best": {"latent_dim": 32, "lr": 0.001}, "trials": [1, 2]})
    )
    md, result = build_paper_tables(tmp_path)
    assert "| best.latent_dim | 32 |" in md
    assert "| trials | [2 entries] |" in md
    assert result["sweep"]["best"]["latent_dim"] == 32


def test_write_paper_tables_is_atomic(tmp_path, monkeypatch):
    reports = write_reports(tmp_path / "reports", fixture_reports())
    out = write_paper_tables(reports, reports / "paper_tables.md")
    assert out == reports / "paper_tables.md"
    assert sorted(p.name for p in reports.iterdir()) == sorted(
        [f"{n}.json" for n in REPORT_NAMES] + ["paper_tables.md", "paper_tables.json"]
    )
    md = out.read_text()
    data = json.loads((reports / "paper_tables.json").read_text())
    assert md == build_paper_tables(reports)[0]
    assert {c["id"]: c["status"] for c in data["claims"]}["t1_fid"] == "holds"
    assert data["table1"]["rows"]["rf_lzn"]["metrics"]["fid"]["paper"] == 2.59

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    (reports / "rf_lzn.json").write_text(json.dumps({**fixture_reports()["rf_lzn"], "fid": 99.0}))
    with pytest.raises(OSError, match="disk full"):
        write_paper_tables(reports, out)
    assert out.read_text() == md  # the previous complete report is untouched
    assert not [p.name for p in reports.iterdir() if p.name.endswith(".tmp")]


def test_paper_tables_json_keeps_unicode_and_a_nan_of_the_sweep(tmp_path):
    reports = write_reports(tmp_path / "reports", fixture_reports())
    (reports / "sweep.json").write_text('{"best": {"final_loss": NaN}}')  # a diverged trial, as the sweep writes it
    out = write_paper_tables(reports, reports / "paper_tables.md")
    _, result = build_paper_tables(reports)
    text = out.with_suffix(".json").read_text(encoding="utf-8")
    assert text == json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    assert '"final_loss": NaN' in text and "α" in text
