"""pipeline/report/zones.py: zone map of the label flow: symmetric anchors split the plane along their bisector."""

import torch

from pipeline.report.zones import plot_zones, zone_grid


def test_two_symmetric_anchors_split_the_plane_in_halves(tmp_path):
    anchors = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    labels, basis = zone_grid(anchors, resolution=40, steps=100)
    assert torch.equal(basis, torch.eye(2, dtype=torch.float64))
    left, right = labels[:, :20], labels[:, 20:]
    assert (left == 0).all() and (right == 1).all()
    out = plot_zones(anchors, tmp_path / "zones.png", ["a", "b"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))
    assert [p.name for p in tmp_path.iterdir()] == ["zones.png"]  # no temporary file left behind


def test_high_dimensional_anchors_use_a_principal_slice():
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(10, 16, generator=g) * 3
    labels, basis = zone_grid(anchors, resolution=24, steps=50)
    assert basis.shape == (2, 16)
    torch.testing.assert_close(basis @ basis.T, torch.eye(2, dtype=torch.float64))
    assert labels.shape == (24, 24) and len(set(labels.ravel().tolist())) >= 3
