"""The six experiments of the paper's three case studies, as one table of data (LZN_SPEC §2, DESIGN.md).

Every list of experiment names in the project is derived from :data:`EXPERIMENTS`: the params
schema (which fields an experiment needs), the objectives, generation, the model builder, the
evaluation stages and the DVC matrices (checked by ``tests/test_layout.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONDITIONAL", "ENCODERS", "EXPERIMENTS", "Experiment", "GENERATIVE", "NAMES", "TWO_VIEW"]


@dataclass(frozen=True)
class Experiment:
    """What one experiment trains and how it is evaluated.

    ``modules``: trainable modules (``iterations`` and ``lr`` are keyed by these names).
    ``encoder``: the image encoder architecture (``"ncsnpp"``, ``"resnet"``) or None.
    ``generative``/``conditional``: has an RF decoder / is class-conditional.
    ``two_view``: trains on two augmented views (case study 2; SimCLR augmentation).
    ``fields``: experiment-specific params fields it requires (others must be absent).
    ``paper``: the paper's analogue.
    """

    name: str
    modules: tuple[str, ...]
    encoder: str | None
    generative: bool
    conditional: bool
    two_view: bool
    fields: tuple[str, ...]
    paper: str


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("rf", ("decoder",), None, True, False, False, (), 'Table 1 "RF"'),
        Experiment("rf_lzn", ("decoder", "encoder"), "ncsnpp", True, False, False, ("latent_dim", "latent_flow"),
                   'Table 1 "RF+LZN" (case study 1)'),
        Experiment("simclr", ("encoder",), "resnet", False, False, True, ("latent_dim", "temperature"),
                   "Table 2 baseline"),
        Experiment("lzn_repr", ("encoder",), "resnet", False, False, True, ("latent_dim", "latent_flow", "align"),
                   'Table 2 "LZN" (case study 2)'),
        Experiment("rf_cond", ("decoder",), None, True, True, False, (), 'Table 4 "RF"'),
        Experiment("lzn_joint", ("decoder", "encoder", "labels"), "ncsnpp", True, True, False,
                   ("latent_dim", "latent_flow", "align", "rf_weight", "label_weight"),
                   "Tables 3-4 RF+LZN (case study 3)"),
    )
}
"""The experiments in DAG order."""

NAMES: tuple[str, ...] = tuple(EXPERIMENTS)
GENERATIVE: tuple[str, ...] = tuple(n for n, e in EXPERIMENTS.items() if e.generative)
CONDITIONAL: tuple[str, ...] = tuple(n for n, e in EXPERIMENTS.items() if e.conditional)
ENCODERS: tuple[str, ...] = tuple(n for n, e in EXPERIMENTS.items() if e.encoder is not None)
TWO_VIEW: tuple[str, ...] = tuple(n for n, e in EXPERIMENTS.items() if e.two_view)
