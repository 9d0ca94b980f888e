"""pipeline/report/tables.py and stages/report.py: the paper's tables from fixture metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.report import tables as report
from pipeline.report.tables import DASH, build_report, write_report

ROOT = Path(__file__).resolve().parents[3]
COMMON = {"dataset": "digits 8x8", "num_samples": 1000, "seed_count": 3, "feature_network": "digits-resnet"}


def _reports(rf_lzn_better: bool = True) -> dict[str, dict]:
    """A full set of reports; RF+LZN (and the joint model) better or worse than their baselines."""
    good = rf_lzn_better
    return {
        "rf": {**COMMON, "fid": 12.3456, "fid_std": 0.5, "inception_score": 4.1, "precision": 0.61,
               "recall": 0.52, "recon_error": 0.0712},
        "rf_lzn": {**COMMON, "fid": 11.2 if good else 13.9, "fid_std": 0.4, "inception_score": 4.3,
                   "precision": 0.62 if good else 0.60, "recall": 0.55, "recon_error": 0.031 if good else 0.09},
        "simclr": {"dataset": "digits 8x8", "seed_count": 3, "probe_top1": 0.9, "probe_top5": 0.99},
        "lzn_repr": {"dataset": "digits 8x8", "seed_count": 3, "probe_top1": 0.92 if good else 0.85,
                     "probe_top1_std": 0.01, "probe_top5": 0.995},
        "rf_cond": {**COMMON, "fid": 10.0, "fid_conditional": 9.0, "inception_score": 4.5, "precision": 0.6,
                    "recall": 0.5, "recon_error": 0.05},
        "lzn_joint": {**COMMON, "fid_conditional": 8.5 if good else 9.5, "inception_score": 4.6,
                      "precision": 0.62, "recall": 0.5, "recon_error": 0.02, "accuracy_default": 0.9,
                      "accuracy_tuned": 0.9447 if good else 0.93, "tuned_alpha": 0.4, "tuned_batch_size": 300},
        "supervised": {"dataset": "digits 8x8", "seed_count": 3, "accuracy": 0.94},
    }  # fmt: skip


def _write(folder: Path, reports: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, metrics in reports.items():
        (folder / f"{name}.json").write_text(json.dumps(metrics))
    return folder


def _section(md: str, heading: str) -> str:
    start = md.index(heading)
    end = md.find("\n## ", start + 1)
    return md[start : end if end >= 0 else None]


def _row(md: str, heading: str, label: str) -> list[str]:
    rows = [line for line in _section(md, heading).splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, (label, rows)
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def _claims(result: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in result["claims"]}


def _claim_line(md: str, text: str) -> str:
    (line,) = [line for line in md.splitlines() if line.startswith("- **") and text in line]
    return line


# ------------------------------------------------------------------------------------ tables
def test_std_printed_at_the_value_precision_and_tuned_alpha_per_seed(tmp_path):
    reports = _reports()
    reports["rf"].update(inception_score_std=0.0534, recon_error=0.0144, recon_error_std=0.00210)
    reports["lzn_joint"].update(tuned_alpha=0.0666667, tuned_alpha_std=0.0942809)
    md, _ = build_report(_write(tmp_path, reports))
    rf = _row(md, "## Table 1", "RF")
    assert rf[3] == "4.10 ± 0.05" and rf[9] == "0.0144 ± 0.0021"
    (tuned,) = [line for line in _section(md, "## Table 3").splitlines() if "| tuned" in line]
    assert "tuned (batch 300, α chosen per seed, mean 0.067)" in tuned


def test_one_seed_shows_no_std(tmp_path):
    reports = _reports()
    for metrics in reports.values():
        metrics["seed_count"] = 1
        metrics.update({f"{k}_std": 0.0 for k in list(metrics) if k in ("fid", "probe_top1")})
    md, result = build_report(_write(tmp_path, reports))
    assert _row(md, "## Table 1", "RF")[1] == "12.35"  # not "12.35 ± 0.00": one seed measures no noise
    assert _row(md, "## Table 2", "LZN")[1] == "92.00"
    assert result["table1"]["direction"]["fid"]["within_one_std"] is None


def test_table1_cells_beside_paper_values(tmp_path):
    md, result = build_report(_write(tmp_path, _reports()))
    header = _row(md, "## Table 1", "algo")
    assert header[:3] == ["algo", "FID↓ (run)", "FID↓ (paper)"]
    assert header[-1] == "direction holds?"
    rf = _row(md, "## Table 1", "RF")
    lzn = _row(md, "## Table 1", "RF+LZN")
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
    md, result = build_report(_write(tmp_path, _reports(rf_lzn_better=False)))
    lzn = _row(md, "## Table 1", "RF+LZN")
    # the paper ties on precision (0.70 vs 0.70): RF+LZN 0.60 < RF 0.61 is "worse", so it does not hold
    assert lzn[-1] == "FID: does not hold; IS: holds; Prec: does not hold; Rec: holds; Recon: does not hold"
    direction = result["table1"]["direction"]
    assert direction["fid"] == {
        "better": "lower", "paper": "better", "run": "worse", "status": "does not hold", "within_one_std": False
    }  # fmt: skip
    assert direction["precision"]["paper"] == "tie"


def test_claims_hold_when_lzn_is_better(tmp_path):
    md, result = build_report(_write(tmp_path, _reports(rf_lzn_better=True)))
    assert _claims(result) == {
        "t1_fid": "holds",
        "t1_recon": "holds",
        "t2_probe": "holds",
        "t3_accuracy": "holds",
        "t4_fid": "holds",
        "fig19_ranking": "not measured",
    }
    line = _claim_line(md, "lower) FID than RF (Table 1)")
    assert line.startswith("- **holds** — ")
    assert "this run 11.20 vs 12.35 (RF+LZN vs RF); paper 2.59 vs 2.76." in line
    line = _claim_line(md, "linear probe")
    assert "this run 92.00 vs 90.00 (LZN vs SimCLR); paper 69.5 vs 69.3." in line
    line = _claim_line(md, "supervised classifier")
    assert "this run 94.47 vs 94.00 (RF+LZN joint vs supervised); paper 94.47 vs 93.02." in line


def test_claims_do_not_hold_when_lzn_is_worse(tmp_path):
    md, result = build_report(_write(tmp_path, _reports(rf_lzn_better=False)))
    assert _claims(result) == {
        "t1_fid": "does not hold",
        "t1_recon": "does not hold",
        "t2_probe": "does not hold",
        "t3_accuracy": "does not hold",
        "t4_fid": "does not hold",
        "fig19_ranking": "not measured",
    }
    assert _claim_line(md, "lower) FID than RF (Table 1)").startswith("- **does not hold** — ")
    assert _claim_line(md, "conditional FID").startswith("- **does not hold** — ")


def test_claim_ties_and_noise(tmp_path):
    reports = _reports()
    reports["lzn_repr"]["probe_top1"] = reports["simclr"]["probe_top1"]  # "LZN >= SimCLR" holds on a tie
    reports["rf_lzn"]["fid"] = 12.0  # 0.35 apart with stds 0.5 / 0.4: better, but within one std
    md, result = build_report(_write(tmp_path, reports))
    assert _claims(result)["t2_probe"] == "holds"
    assert _claims(result)["t1_fid"] == "holds"
    assert _claim_line(md, "lower) FID than RF (Table 1)").startswith(
        "- **holds** (difference within one std) — "
    )
    reports["rf_lzn"]["fid"] = reports["rf"]["fid"]  # strict "better" claim fails on a tie
    _, result = build_report(_write(tmp_path, reports))
    assert _claims(result)["t1_fid"] == "does not hold"


def test_probe_and_accuracy_shown_in_percent(tmp_path):
    md, result = build_report(_write(tmp_path, _reports()))
    assert _row(md, "## Table 2", "SimCLR") == ["SimCLR", "90.00", "69.3", "99.00", "89.0"]
    assert _row(md, "## Table 2", "LZN") == ["LZN", "92.00 ± 1.00", "69.5", "99.50", "89.3"]
    t3 = _section(md, "## Table 3")
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


def test_table4_prefers_conditional_fid_and_tuned_accuracy(tmp_path):
    reports = _reports()
    md, _ = build_report(_write(tmp_path, reports))
    cond = _row(md, "## Table 4", "RF (conditional)")
    joint = _row(md, "## Table 4", "RF+LZN joint")
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
    md, _ = build_report(_write(tmp_path, reports))
    assert _row(md, "## Table 4", "RF+LZN joint")[1] == "7.25"
    assert _row(md, "## Table 4", "RF+LZN joint")[11] == "90.00"
    assert "accuracy from `accuracy_default`" in md


def test_feature_ablation_rows(tmp_path):
    reports = _reports()
    reports["lzn_repr"].update(
        probe_top1_anchor=0.8, probe_top1_latent_alpha0=0.82, probe_top1_latent_alpha1=0.3
    )
    md, result = build_report(_write(tmp_path, reports))
    t2 = _section(md, "## Table 2")
    assert "| backbone (w/o head) | 92.00 ± 1.00 | 65.6 |" in t2
    assert "| latent (α = 1) | 30.00 | 11.9 |" in t2
    assert "| head output (anchor) | 80.00 | 54.9 / 55.9 † |" in t2
    assert _claims(result)["fig19_ranking"] == "holds"
    reports["lzn_repr"]["probe_top1_latent_alpha1"] = 0.95  # the latent beats the backbone
    _, result = build_report(_write(tmp_path, reports))
    assert _claims(result)["fig19_ranking"] == "does not hold"
    assert "Feature-choice ablation" not in build_report(_write(tmp_path / "plain", _reports()))[0]


def test_header_states_dataset_scale_and_feature_network(tmp_path):
    md, _ = build_report(_write(tmp_path, _reports()))
    head = md.split("## Table 1")[0]
    assert "Dataset: digits 8x8" in head
    assert "Generated samples per evaluation: 1000" in head
    assert "Seeds per experiment: 3" in head
    for table in ("## Table 1", "## Table 4"):
        section = _section(md, table)
        assert "Feature network of this run: `digits-resnet`" in section
        assert (
            "not comparable to the paper's Inception-based values when the feature network differs" in section
        )
        assert "compare directions, not values" in section
        assert "Warning" not in section
    reports = _reports()
    reports["rf"]["feature_network"] = "inception-v3"
    md, _ = build_report(_write(tmp_path, reports))
    assert "Warning: RF and RF+LZN were evaluated with different feature networks" in _section(
        md, "## Table 1"
    )


# ---------------------------------------------------------------------------- partial / bad input
def test_missing_files_and_keys_render_dash(tmp_path):
    md, result = build_report(tmp_path)  # no reports at all
    rf = _row(md, "## Table 1", "RF")
    assert rf[1:3] == [DASH, "2.76"]
    assert rf[1:11:2] == [DASH] * 5  # every "run" column
    assert rf[2:11:2] == ["2.76", "9.51", "0.70", "0.59", "0.83"]  # paper columns still shown
    assert set(_claims(result).values()) == {"not measured"}
    assert "Missing reports (shown as –): rf.json, rf_lzn.json" in md
    assert _row(md, "## Table 1", "RF+LZN")[-1] == (
        "FID: not measured; IS: not measured; Prec: not measured; Rec: not measured; Recon: not measured"
    )
    # one file, one key missing
    reports = _reports()
    del reports["rf_lzn"]
    del reports["rf"]["inception_score"]
    md, result = build_report(_write(tmp_path / "partial", reports))
    assert _row(md, "## Table 1", "RF")[3:5] == [DASH, "9.51"]
    assert _row(md, "## Table 1", "RF+LZN")[1] == DASH
    assert _claims(result)["t1_fid"] == "not measured"
    assert _claims(result)["t4_fid"] == "holds"
    assert "rf_lzn.json" in md.split("## Table 1")[0]


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
    _write(tmp_path, _reports())
    (tmp_path / "lzn_joint.json").write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        build_report(tmp_path)
    assert "lzn_joint.json" in str(err.value)


def test_paper_numbers_come_from_the_project_copy(tmp_path):
    assert report.PAPER_RESULTS == ROOT / "pipeline" / "report" / "paper_results.yaml"
    paper = report.load_paper_results()
    assert paper["table1_unconditional_generation"]["cifar10"]["rf_lzn"]["fid"] == 2.59
    # a custom (here: empty) paper mapping renders the paper columns as "–"
    md, _ = build_report(_write(tmp_path, _reports()), paper={})
    assert _row(md, "## Table 1", "RF")[1:3] == ["12.35 ± 0.50", DASH]


def test_sweep_summary_only_when_present(tmp_path):
    _write(tmp_path, _reports())
    assert "## Sweep" not in build_report(tmp_path)[0]
    (tmp_path / "sweep.json").write_text(
        json.dumps({"best": {"latent_dim": 32, "lr": 0.001}, "trials": [1, 2]})
    )
    md, result = build_report(tmp_path)
    assert "| best.latent_dim | 32 |" in md
    assert "| trials | [2 entries] |" in md
    assert result["sweep"]["best"]["latent_dim"] == 32


# ------------------------------------------------------------------------------------ writing
def test_write_report_is_atomic(tmp_path, monkeypatch):
    reports = _write(tmp_path / "reports", _reports())
    out = write_report(reports, reports / "paper_tables.md")
    assert out == reports / "paper_tables.md"
    assert sorted(p.name for p in reports.iterdir()) == sorted(
        [f"{n}.json" for n in report.REPORT_NAMES] + ["paper_tables.md", "paper_tables.json"]
    )
    md = out.read_text()
    data = json.loads((reports / "paper_tables.json").read_text())
    assert md == build_report(reports)[0]
    assert {c["id"]: c["status"] for c in data["claims"]}["t1_fid"] == "holds"
    assert data["table1"]["rows"]["rf_lzn"]["metrics"]["fid"]["paper"] == 2.59

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    (reports / "rf_lzn.json").write_text(json.dumps({**_reports()["rf_lzn"], "fid": 99.0}))
    with pytest.raises(OSError, match="disk full"):
        write_report(reports, out)
    assert out.read_text() == md  # the previous complete report is untouched
    assert not [p.name for p in reports.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------ stage
def _stage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "stages/report.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_stage_writes_report(tmp_path):
    reports = _write(tmp_path, _reports())
    proc = _stage("--reports", str(reports), "--out", str(tmp_path / "paper_tables.md"))
    assert proc.returncode == 0, proc.stderr
    assert "| RF | 12.35 ± 0.50 | 2.76 |" in (tmp_path / "paper_tables.md").read_text()
    assert json.loads((tmp_path / "paper_tables.json").read_text())["meta"]["dataset"]["rf"] == "digits 8x8"


def test_stage_rejects_malformed_report_in_one_line(tmp_path):
    reports = _write(tmp_path, _reports())
    (reports / "rf.json").write_text("{not json")
    proc = _stage("--reports", str(reports), "--out", str(tmp_path / "paper_tables.md"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "rf.json" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "paper_tables.md").exists()
