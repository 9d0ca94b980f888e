"""stages/report.py: the report stage run as a script."""

import json
import subprocess
import sys

from report_support import ROOT, fixture_reports, write_reports


def _stage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "stages/report.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_stage_writes_report(tmp_path):
    reports = write_reports(tmp_path, fixture_reports())
    proc = _stage("--reports", str(reports), "--out", str(tmp_path / "paper_tables.md"))
    assert proc.returncode == 0, proc.stderr
    assert "| RF | 12.35 ± 0.50 | 2.76 |" in (tmp_path / "paper_tables.md").read_text()
    assert json.loads((tmp_path / "paper_tables.json").read_text())["meta"]["dataset"]["rf"] == "digits 8x8"


def test_stage_rejects_malformed_report_in_one_line(tmp_path):
    reports = write_reports(tmp_path, fixture_reports())
    (reports / "rf.json").write_text("{not json")
    proc = _stage("--reports", str(reports), "--out", str(tmp_path / "paper_tables.md"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "rf.json" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "paper_tables.md").exists()


def test_stage_without_reports_says_so_in_one_line(tmp_path):
    proc = _stage("--reports", str(tmp_path / "missing"), "--out", str(tmp_path / "paper_tables.md"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'missing'}: reports folder not found", proc.stderr
