"""`pipeline.data.images`: the one uint8 <-> [-1, 1] pair, exact and bit-identical to ``u / 127.5 - 1``."""

from __future__ import annotations

import torch

from pipeline.data.images import from_uint8, to_uint8


def test_round_trip_and_bits():
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).repeat(2, 3, 1, 1)
    x = from_uint8(u)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(x.view(torch.int32), (u.float() / 127.5 - 1.0).view(torch.int32))  # bitwise
    assert torch.equal(to_uint8(x), u)
    nhwc = u.permute(0, 2, 3, 1)  # a strided view converts the same
    assert torch.equal(from_uint8(nhwc), from_uint8(nhwc.contiguous()))
    assert torch.equal(to_uint8(torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])), torch.tensor([0, 0, 128, 255, 255]).byte())
