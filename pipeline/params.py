"""Typed, validated view of ``params.yaml`` — the only module that reads it.

Every section of ``params.yaml`` maps onto a frozen pydantic model with ``extra="forbid"``: an
unknown key, a wrong type or an out-of-range value raises :class:`ParamsError` whose one-line
message names the dotted key (``train.rf_lzn.latent_dim``) before any work is done.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lzn.experiments import CONDITIONAL as CONDITIONAL  # re-exported: the pipeline's names
from lzn.experiments import ENCODERS as ENCODERS
from lzn.experiments import EXPERIMENTS as EXPERIMENT_TABLE
from lzn.experiments import GENERATIVE as GENERATIVE
from lzn.experiments import NAMES
from lzn.flow import FLOW_DTYPES, FlowSpec
from pipeline.errors import ParamsError

# the experiment table (lzn.experiments) under the names the pipeline uses
EXPERIMENTS: tuple[str, ...] = NAMES
"""The six experiments of DESIGN.md, in DAG order."""

MODULES: dict[str, tuple[str, ...]] = {name: e.modules for name, e in EXPERIMENT_TABLE.items()}
"""Trainable modules of each experiment; ``iterations`` and ``lr`` are keyed by these names."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------- data
class ShardConfig(_Config):
    source: Literal["digits", "cifar10", "imagefolder"] = "digits"
    path: str = ""
    image_size: int = Field(0, ge=0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    shard_size: int = Field(256, ge=1)
    seed: int = 0


class SimCLRAugmentConfig(_Config):
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 4 / 3)
    flip_p: float = Field(0.5, ge=0.0, le=1.0)
    jitter_p: float = Field(0.8, ge=0.0, le=1.0)
    brightness: float = Field(0.4, ge=0.0)
    contrast: float = Field(0.4, ge=0.0)
    saturation: float = Field(0.4, ge=0.0)
    hue: float = Field(0.1, ge=0.0, le=0.5)
    grayscale_p: float = Field(0.2, ge=0.0, le=1.0)
    blur_p: float = Field(0.5, ge=0.0, le=1.0)
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    blur_kernel: int = Field(3, ge=1)

    @field_validator("crop_scale", "crop_ratio", "blur_sigma")
    @classmethod
    def _ordered_positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] <= v[1]):
            raise ValueError(f"must be an increasing pair of positive numbers, got {list(v)}")
        return v

    @field_validator("blur_kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd, got {v}")
        return v


class AugmentConfig(_Config):
    flip_p: float = Field(0.5, ge=0.0, le=1.0)
    simclr: SimCLRAugmentConfig = SimCLRAugmentConfig()


# ---------------------------------------------------------------------------------------- model
class DecoderConfig(_Config):
    nf: int = Field(32, ge=1)
    ch_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = Field(1, ge=1)
    attn_resolutions: tuple[int, ...] = (4,)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class EncoderConfig(DecoderConfig):
    head_channels: int = Field(20, ge=1)
    head_hidden: int = Field(200, ge=1)
    head_resolutions: tuple[int, ...] | None = None


class ResNetConfig(_Config):
    width: int = Field(32, ge=1)
    layers: tuple[int, ...] = (1, 1, 1)
    proj_hidden: int = Field(128, ge=1)
    bottleneck: bool = False
    imagenet_stem: bool = False


class ModelConfig(_Config):
    decoder: DecoderConfig = DecoderConfig()
    encoder: EncoderConfig = EncoderConfig()
    resnet: ResNetConfig = ResNetConfig()


# ------------------------------------------------------------------------------------- training
class FlowConfig(_Config):
    """Latent computation of LZN_SPEC §1.2/§1.8 (anchor -> latent)."""

    solver: Literal["euler", "dpm++"] = "euler"
    steps: int = Field(20, ge=1)
    eps: float = Field(1e-4, gt=0.0, lt=1.0)
    alpha: float = Field(1.0, ge=0.0)
    checkpoint: bool = False
    # float32 by default: with the exact backward of lzn.flow its gradients (dL/dA, own = anchors) are as
    # accurate as the naive [n, N, q] broadcast form's in float32: 0.5-1.3x its error against the naive
    # form in float64 (eps 1e-4 / 1e-3, N = 256-512, q = 64-256, anchor std 1-10; relative errors 1.5e-4
    # ... 2e-3 at std 1-3; bench/bench_flow.py part [4b], lzn.flow "Gradients"). float64 gives 3e-13 ...
    # 1e-9; choose it for eps = 1e-4 with widely spread anchors (std 10), where float32 loses the
    # gradient in every formulation (0.5 relative).
    precision: Literal["float32", "float64"] = "float32"

    def spec(self) -> FlowSpec:
        """The method's :class:`lzn.flow.FlowSpec` of this configuration."""
        return FlowSpec(solver=self.solver, steps=self.steps, eps=self.eps, alpha=self.alpha,
                        checkpoint=self.checkpoint, dtype=FLOW_DTYPES[self.precision])


class AlignConfig(_Config):
    """Reverse flow + alignment loss of LZN_SPEC §1.3-§1.4."""

    steps: int = Field(20, ge=1)
    cutoff: float = Field(0.2, ge=0.0, lt=1.0)
    log: bool = True


class ExperimentConfig(_Config):
    """Hyperparameters of one experiment; fields that an experiment does not use must be absent."""

    name: str = ""
    batch_size: int = Field(128, ge=2)
    iterations: dict[str, int]
    lr: dict[str, float]
    warmup: int = Field(0, ge=0)
    clip: float = Field(1.0, gt=0.0)
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    latent_dim: int | None = Field(None, ge=1)
    latent_flow: FlowConfig | None = None
    align: AlignConfig | None = None
    temperature: float | None = Field(None, gt=0.0)
    rf_weight: float | None = Field(None, ge=0.0)
    label_weight: float | None = Field(None, ge=0.0)

    def align_flow(self) -> FlowSpec:
        """Reverse flow of the alignment loss (LZN_SPEC §1.3-1.4): Euler, ``align.steps`` evaluations, the
        latent flow's precision and checkpointing."""
        if self.align is None or self.latent_flow is None:
            raise ValueError(f"experiment {self.name!r} has no alignment flow")
        forward = self.latent_flow.spec()
        return FlowSpec(solver="euler", steps=self.align.steps, checkpoint=forward.checkpoint, dtype=forward.dtype)

    @property
    def total_iterations(self) -> int:
        """Training length = the largest per-module budget (LZN_SPEC §2.0, module freezing)."""
        return max(self.iterations.values())


_OPTIONAL_FIELDS = ("latent_dim", "latent_flow", "align", "temperature", "rf_weight", "label_weight")


class TrainConfig(_Config):
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0)
    max_failures: int = Field(1, ge=-1)
    storage: str = "ray_results"
    log_every: int = Field(25, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    eval_every: int = Field(0, ge=0)  # rank 0 computes online evaluation metrics every N steps (0 = off)
    threads_per_worker: int = Field(1, ge=1)
    rf: ExperimentConfig
    rf_lzn: ExperimentConfig
    simclr: ExperimentConfig
    lzn_repr: ExperimentConfig
    rf_cond: ExperimentConfig
    lzn_joint: ExperimentConfig

    @model_validator(mode="after")
    def _check_experiments(self) -> TrainConfig:
        for name in EXPERIMENTS:
            exp: ExperimentConfig = getattr(self, name)
            modules = set(MODULES[name])
            for key in ("iterations", "lr"):
                got = set(getattr(exp, key))
                if got != modules:
                    raise ValueError(
                        f"train.{name}.{key}: expected keys {sorted(modules)}, got {sorted(got)}"
                    )
            for module, n in exp.iterations.items():
                if n < 0:
                    raise ValueError(f"train.{name}.iterations.{module}: must be >= 0, got {n}")
            if exp.total_iterations < 1:
                raise ValueError(f"train.{name}.iterations: at least one module needs >= 1 iteration")
            for module, lr in exp.lr.items():
                if not lr > 0:
                    raise ValueError(f"train.{name}.lr.{module}: must be > 0, got {lr}")
            for field in _OPTIONAL_FIELDS:
                present = getattr(exp, field) is not None
                if field in EXPERIMENT_TABLE[name].fields and not present:
                    raise ValueError(f"train.{name}.{field}: required for experiment {name!r}")
                if field not in EXPERIMENT_TABLE[name].fields and present:
                    raise ValueError(f"train.{name}.{field}: not used by experiment {name!r}; remove it")
        return self


# ----------------------------------------------------------------------------------- evaluation
class RefnetConfig(_Config):
    """Reference classifier trained on the real training split: the digits feature network."""

    epochs: int = Field(30, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    batch_size: int = Field(128, ge=1)
    width: int = Field(32, ge=1)
    seed: int = 0


class ExtractConfig(_Config):
    batch_size: int = Field(256, ge=2)  # eval batch: a latent depends on the other anchors of its batch


class ProbeConfig(_Config):
    epochs: int = Field(100, ge=1)
    lr: float = Field(1e-2, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(256, ge=1)
    seed: int = 0


class SupervisedConfig(_Config):
    iterations: int = Field(400, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    batch_size: int = Field(128, ge=1)


class ClassifyConfig(_Config):
    batch_size: int = Field(200, ge=2)
    alpha: float = Field(1.0, ge=0.0)
    tuned_batch_size: int = Field(360, ge=2)
    tuned_alphas: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)
    label_steps: int = Field(100, ge=1)
    supervised: SupervisedConfig = SupervisedConfig()

    @field_validator("tuned_alphas")
    @classmethod
    def _alphas(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(a < 0 for a in v):
            raise ValueError(f"must be a non-empty list of alphas >= 0, got {list(v)}")
        return v


class GenerateConfig(_Config):
    num_samples: int = Field(1000, ge=2)
    sampler: Literal["rk45", "euler"] = "rk45"
    euler_steps: int = Field(10, ge=1)
    batch_size: int = Field(500, ge=1)
    seed: int = 0


class FidConfig(_Config):
    feature_network: Literal["reference", "inception"] = "reference"
    inception_weights: str = ""
    pr_k: int = Field(3, ge=1)
    is_splits: int = Field(10, ge=1)
    recon_images: int = Field(100, ge=1)
    recon_repeats: int = Field(2, ge=1)


SWEEP_DISTRIBUTIONS: tuple[str, ...] = ("choice", "uniform", "loguniform", "randint")
"""Distributions of ``sweep.space``: ``{choice: [v, ...]}``, ``{uniform: [lo, hi]}``,
``{loguniform: [lo, hi]}`` (0 < lo) and ``{randint: [lo, hi]}`` (integers, hi exclusive, as Ray Tune)."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class SweepConfig(_Config):
    """Ray Tune sweep of ``stages/sweep.py``: search space over dotted params keys, ASHA early stopping.

    Structure and ranges of ``space`` are checked here; that every key exists in the params and
    that its values validate, and that ``metric`` is reported by ``experiment``, is checked by
    ``pipeline.sweep.plan`` before any trial starts.
    """

    experiment: str = "lzn_repr"
    metric: str = "probe_top1"
    mode: Literal["max", "min"] = "max"
    num_samples: int = Field(8, ge=1)
    max_concurrent_trials: int = Field(0, ge=0)  # 0 = as many as the cluster's CPUs (GPUs) hold
    eval_every: int = Field(50, ge=1)
    grace_period: int = Field(1, ge=1)  # ASHA, in evaluations (Tune training iterations)
    reduction_factor: float = Field(2.0, gt=1.0)
    driver_cpus: float = Field(0.2, gt=0.0)  # CPU reserved by each trial's driver (the Tune trainable)
    cpus_per_worker: float | None = Field(None, gt=0.0)  # train.cpus_per_worker of the trials (None: unchanged)
    seed: int = 0
    space: dict[str, dict[str, list[Any]]] = {}

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, v: str) -> str:
        if v not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {v!r}; expected one of {', '.join(EXPERIMENTS)}")
        return v

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
        for key, spec in v.items():
            where = f"sweep.space.{key}"
            if len(spec) != 1:
                raise ValueError(
                    f"{where}: expected exactly one distribution ({', '.join(SWEEP_DISTRIBUTIONS)}), got {sorted(spec)}"
                )
            dist, values = next(iter(spec.items()))
            if dist not in SWEEP_DISTRIBUTIONS:
                raise ValueError(
                    f"{where}: unknown distribution {dist!r}; expected one of {', '.join(SWEEP_DISTRIBUTIONS)}"
                )
            if dist == "choice":
                if not values:
                    raise ValueError(f"{where}: empty choice; list at least one value")
                continue
            if len(values) != 2 or not all(_is_number(b) for b in values):
                raise ValueError(
                    f"{where}: {dist} needs [lo, hi] as two numbers, got {values!r} "
                    "(in YAML write 1.0e-3, not 1e-3, which is a string)"
                )
            lo, hi = values
            if dist == "randint" and not all(isinstance(b, int) for b in values):
                raise ValueError(f"{where}: randint needs integer bounds, got {values!r}")
            if not lo < hi:
                raise ValueError(f"{where}: empty range [{lo}, {hi}]; needs lo < hi")
            if dist == "loguniform" and lo <= 0:
                raise ValueError(f"{where}: loguniform needs 0 < lo, got {lo}")
        return v


class Params(_Config):
    seeds: tuple[int, ...] = (0,)
    shard: ShardConfig = ShardConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig
    refnet: RefnetConfig = RefnetConfig()
    extract: ExtractConfig = ExtractConfig()
    probe: ProbeConfig = ProbeConfig()
    classify: ClassifyConfig = ClassifyConfig()
    generate: GenerateConfig = GenerateConfig()
    fid: FidConfig = FidConfig()
    sweep: SweepConfig = SweepConfig()

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("must list at least one seed")
        if len(set(v)) != len(v):
            raise ValueError(f"must not repeat a seed, got {list(v)}")
        return v

    def experiment(self, name: str) -> ExperimentConfig:
        """The validated config of one experiment, with ``name`` filled in."""
        if name not in EXPERIMENTS:
            raise ParamsError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
        return getattr(self.train, name).model_copy(update={"name": name})


# ------------------------------------------------------------------------------------ functions
def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing key"
    got = first.get("input")
    skip = first["type"] in ("missing", "extra_forbidden") or isinstance(got, dict) or "got " in msg
    shown = "" if skip else f" (got {got!r})"
    extra = f" [+{len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    if loc and msg.startswith(f"{loc}."):  # model-level check that already names the full key
        loc = ""
    return f"{source}: {loc + ': ' if loc else ''}{msg}{shown}{extra}"


def validate_params(raw: Mapping[str, Any], source: str = "params") -> Params:
    """Validate a parsed params mapping; raise :class:`ParamsError` naming the first bad key."""
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(dict(raw))
    except ValidationError as err:
        raise ParamsError(_format_error(err, source)) from None


def read_params_dict(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
    return raw if raw is not None else {}


def load_params(path: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None) -> Params:
    """Read, override (dotted keys) and validate ``params.yaml``."""
    raw = read_params_dict(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return validate_params(raw, str(path))


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``raw`` with dotted keys (``train.rf_lzn.latent_dim``) replaced.

    Every key must already exist, so a typo is an error rather than a silently ignored value.
    """
    out = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node: Any = out
        parts = dotted.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise ParamsError(f"{dotted}: unknown parameter ({'.'.join(parts[: i + 1])} does not exist)")
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return out


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys (``train.lr.encoder``), for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def config_hash(obj: Any, length: int = 10) -> str:
    """Stable short hash of a config (pydantic model or plain data), for deterministic run names."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
