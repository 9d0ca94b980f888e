"""Exponential moving average of model weights with the ``use_num_updates`` warm-up.

Implements the EMA of LZN_SPEC §2.0 (``model/ema.py`` of the official code, from RF / torch_ema): at the
n-th call of ``update`` (n = 1, 2, ...) every floating-point parameter's shadow moves as
``shadow ← shadow − (1 − d_n)·(shadow − param)`` with ``d_n = min(decay, (1 + n) / (10 + n))`` when
``use_num_updates`` (``d_n = decay`` otherwise). Buffers (e.g. norm statistics) are copied as they are.
Evaluation uses the shadow weights (``copy_to``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """EMA of ``module``'s parameters (``named_parameters``) plus a copy of its buffers."""

    def __init__(self, module: nn.Module, decay: float, use_num_updates: bool = True) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.use_num_updates = bool(use_num_updates)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in module.named_parameters()
        }
        self.buffers: dict[str, torch.Tensor] = {
            name: b.detach().clone() for name, b in module.named_buffers()
        }

    def current_decay(self) -> float:
        """The decay the *next* ``update`` will use."""
        if not self.use_num_updates:
            return self.decay
        n = self.num_updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, module: nn.Module) -> float:
        """Move the shadow towards ``module``'s current weights; returns the decay used."""
        decay = self.current_decay()
        self.num_updates += 1
        for name, p in module.named_parameters():
            s = self._lookup(self.shadow, name)
            if torch.is_floating_point(s):
                s.sub_((1.0 - decay) * (s - p.detach().to(s.dtype)))
            else:
                s.copy_(p.detach())
        for name, b in module.named_buffers():
            self._lookup(self.buffers, name).copy_(b.detach())
        return decay

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Overwrite ``module``'s parameters and buffers with the EMA weights."""
        for name, p in module.named_parameters():
            p.copy_(self._lookup(self.shadow, name))
        for name, b in module.named_buffers():
            b.copy_(self._lookup(self.buffers, name))

    def to(self, device: torch.device | str) -> EMA:
        """Move the shadow tensors to ``device`` (returns self)."""
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers only (loadable with ``torch.load(..., weights_only=True)``)."""
        return {
            "decay": self.decay,
            "use_num_updates": self.use_num_updates,
            "num_updates": self.num_updates,
            "shadow": {k: v.clone() for k, v in self.shadow.items()},
            "buffers": {k: v.clone() for k, v in self.buffers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; the tracked names must match this EMA's module."""
        for key in ("shadow", "buffers"):
            mine, theirs = getattr(self, key), state[key]
            if set(mine) != set(theirs):
                missing = sorted(set(mine) - set(theirs))
                unexpected = sorted(set(theirs) - set(mine))
                raise ValueError(f"EMA {key} names differ: missing {missing}, unexpected {unexpected}")
            for name, value in theirs.items():
                if mine[name].shape != value.shape:
                    raise ValueError(
                        f"EMA {key} '{name}' has shape {tuple(value.shape)}, expected {tuple(mine[name].shape)}"
                    )
                mine[name] = value.detach().clone().to(mine[name].device, mine[name].dtype)
        self.decay = float(state["decay"])
        self.use_num_updates = bool(state["use_num_updates"])
        self.num_updates = int(state["num_updates"])

    @staticmethod
    def _lookup(table: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        try:
            return table[name]
        except KeyError:
            raise ValueError(f"'{name}' is not tracked by this EMA (built for a different module?)") from None
