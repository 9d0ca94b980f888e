"""The one layout of the project's folders (DVC outs and local stores), relative to the project root.

    data/shards/{train,test}/*.tar, data/shards/manifest.json     stage shard
    models/<experiment>/seed_<s>/                                   stage train (pipeline.artifacts)
    models/refnet/                                                  stage refnet
    features/<experiment>/seed_<s>/{train,test}.parquet             stage extract
    samples/<experiment>/seed_<s>/                                  stage generate
    reports/{probe,classify,fid}/<name>.json, reports/<name>.json   stages probe, classify, fid, report
    mlflow.db, ray_results/                                         default tracking store, Ray checkpoints

Every stage and module builds these paths through :class:`Layout`; none is spelled out elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Layout", "seed_dir"]


def seed_dir(parent: Path, seed: int) -> Path:
    """``<parent>/seed_<seed>``: the per-seed folder of every per-experiment out."""
    return Path(parent) / f"seed_{seed}"


@dataclass(frozen=True)
class Layout:
    """The folders of the project rooted at ``root`` (made absolute)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def shards(self) -> Path:
        return self.root / "data" / "shards"

    def models(self, experiment: str) -> Path:
        return self.root / "models" / experiment

    def model(self, experiment: str, seed: int) -> Path:
        return seed_dir(self.models(experiment), seed)

    @property
    def refnet(self) -> Path:
        return self.root / "models" / "refnet"

    def features(self, experiment: str) -> Path:
        return self.root / "features" / experiment

    def samples(self, experiment: str) -> Path:
        return self.root / "samples" / experiment

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def stage_report(self, stage: str, name: str) -> Path:
        """``reports/<stage>/<name>.json`` (stage = probe, classify or fid)."""
        return self.reports / stage / f"{name}.json"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"
