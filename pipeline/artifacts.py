"""The exported-model format: ``models/<experiment>/seed_<s>/{model.pt, config.json, run.json}``.

``model.pt`` holds, per module, the raw and EMA state dicts; ``config.json`` the resolved config that
rebuilds the architecture (:mod:`pipeline.build`); ``run.json`` the MLflow run id. ``model.pt``
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.build import DataShape, build_models
from pipeline.errors import ModelNotTrainedError

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
RUN_FILE = "run.json"


def save_exported(out_dir: Path, state: dict[str, Any], config: dict[str, Any], run: dict[str, Any]) -> None:
    """Write ``model.pt``, ``config.json`` and ``run.json`` into ``out_dir`` (which must not exist yet)."""
    out_dir.mkdir(parents=True)
    torch.save(state, out_dir / MODEL_FILE)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True))


def load_exported(model_dir: Path, *, ema: bool = True) -> tuple[dict[str, nn.Module], dict[str, Any], dict[str, Any]]:
    """Rebuild the modules of an exported model (EMA weights by default), in eval mode.

    Returns ``(modules, config, run)`` where ``config`` is the resolved config saved at export.
    """
    from pipeline.params import validate_params

    path = model_dir / MODEL_FILE
    if not path.is_file():
        experiment = model_dir.parent.name if model_dir.name.startswith("seed_") else model_dir.name
        raise ModelNotTrainedError(
            f"{path}: no trained model; run `dvc repro train@{experiment}` "
            f"(or `python stages/train.py --experiment {experiment}`) first"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    run = json.loads((model_dir / RUN_FILE).read_text()) if (model_dir / RUN_FILE).is_file() else {}
    params = validate_params(config["params"], str(model_dir / CONFIG_FILE))
    exp = params.experiment(config["experiment"])
    shape = DataShape(**config["data_shape"])
    modules = build_models(params, exp, shape)
    key = "ema" if ema else "model"
    for name, module in modules.items():
        module.load_state_dict(state[key][name])
        module.eval()
    return modules, config, run
