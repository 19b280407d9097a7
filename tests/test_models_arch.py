"""Detector presets: shapes, strides, config round trip; searched-backbone blocks against plain references."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyddsar
from pyddsar import models
from pyddsar.models import Backbone, DetectorConfig, build_detector
from pyddsar.ops import anchor_centers, num_anchors_per_level

torch.manual_seed(0)


@pytest.mark.parametrize("name", [n for n, c in models.presets.items() if isinstance(c, DetectorConfig)])
def test_preset_contract(name):  # SCRFD framework (asfd-baseline: tests/test_asfd_detector.py)
    m = build_detector(name).eval()
    assert m.strides == (8, 16, 32) and m.num_anchors == 2
    assert m.use_kps == name.endswith("-kps")
    assert DetectorConfig.from_dict(m.config.to_dict()) == m.config
    assert build_detector(DetectorConfig.from_dict(m.config.to_dict())).config == m.config
    h, w = 96, 128
    with torch.no_grad():
        out = m(torch.randn(2, 3, h, w))
    assert isinstance(out, models.HeadOutputs)
    sizes = [(h // s, w // s) for s in (8, 16, 32)]
    for lvl, n in enumerate(num_anchors_per_level(sizes, 2)):
        assert out.cls[lvl].shape == (2, n, 1)
        assert out.bbox[lvl].shape == (2, n, 4)
        if m.use_kps:
            assert out.kps[lvl].shape == (2, n, 10)
    if not m.use_kps:
        assert out.kps is None
    raw = m.predict_raw(torch.randn(1, 3, h, w))
    assert raw.scores.shape == (1, sum(num_anchors_per_level(sizes, 2)))
    assert ((raw.scores >= 0) & (raw.scores <= 1)).all()


def test_flattening_order_matches_anchor_centers():
    # a head whose box output is a constant per location reveals the (y, x, anchor) order
    m = build_detector("scrfd-0.5g", stacked_convs=0).eval()
    for br in m.head.branches:
        nn.init.zeros_(br.reg.weight)
        nn.init.zeros_(br.reg.bias)
        br.reg.bias.data[:] = 1.0  # l = t = r = b = 1 stride unit
    raw = m.predict_raw(torch.zeros(1, 3, 64, 96))
    sizes = [(64 // s, 96 // s) for s in (8, 16, 32)]
    c = anchor_centers(sizes, (8, 16, 32), 2)
    centre = (raw.boxes[0, :, :2] + raw.boxes[0, :, 2:]) / 2
    torch.testing.assert_close(centre, c)
    # anchor 0 and 1 of a location are adjacent; centres advance along x first
    assert torch.equal(c[0], c[1]) and c[2, 0] == 8 and c[2, 1] == 0


def test_backbone_convs_agree_with_arch():
    for name, arch in pyddsar.presets.items():
        bb = Backbone(arch)
        convs = [m for m in bb.modules() if isinstance(m, nn.Conv2d)]
        ref = arch.convs((640, 480))
        assert len(convs) == len(ref), name
        for m, r in zip(convs, ref):
            assert (m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups) == (
                r["cin"], r["cout"], r["kernel"], r["stride"], r["groups"]), (name, r)
        with torch.no_grad():
            outs = bb(torch.zeros(1, 3, 64, 96))
        assert [o.shape[1] for o in outs] == bb.out_channels == [b.out_channels for b in arch.blocks[1:]]
        assert [o.shape[2] for o in outs] == [16, 8, 4, 2]


def _randomise_bn(m):
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


class _Params:
    """Conv and BN parameters consumed in the order the reference uses them (forward order)."""

    def __init__(self, module):
        self.convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        self.bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
        self.i = 0

    def cbn(self, x, stride=1, groups=1, relu=True):
        c, b = self.convs[self.i], self.bns[self.i]
        self.i += 1
        k = c.weight.shape[-1]
        y = F.conv2d(x, c.weight, None, stride, k // 2, 1, groups)
        y = F.batch_norm(y, b.running_mean, b.running_var, b.weight, b.bias, False, 0.0, b.eps)
        return F.relu(y) if relu else y


def _ref_mb(p, x, cin, out, btn, e, k, s):
    d1 = max(8, round(e * btn / 8) * 8)
    d2 = max(8, round(e * out / 8) * 8)
    y = p.cbn(x)
    y = p.cbn(y, s, groups=d1)
    y = p.cbn(y, relu=False)
    x = F.relu(y + p.cbn(x, s, relu=False))  # first half always projects
    y = p.cbn(x)
    y = p.cbn(y, groups=d2)
    y = p.cbn(y, relu=False)
    sc = p.cbn(x, relu=False) if btn != out else x
    return F.relu(y + sc)


def _ref_res(p, x, s):
    y = p.cbn(x, s)
    y = p.cbn(y, relu=False)
    return F.relu(y + p.cbn(x, s, relu=False))


def _ref_btn(p, x, s):
    y = p.cbn(p.cbn(p.cbn(x), s), relu=False)
    x = F.relu(y + p.cbn(x, s, relu=False))
    y = p.cbn(p.cbn(p.cbn(x)), relu=False)
    return F.relu(y + x)


def test_blocks_match_plain_references():
    arch = pyddsar.Arch.parse(
        "SuperConvK3BNRELU(3,8,2,1)SuperResIDWE2K3(8,16,2,12,1)SuperResK3K3(16,24,2,8,1)"
        "SuperResK1K5K1(24,32,2,8,1)SuperResK3K3(32,40,2,8,1)"
    )
    bb = Backbone(arch).eval()
    _randomise_bn(bb)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        c2, c3, c4, _ = bb(x)
        stem = bb.blocks[0](x)
        ref2 = _ref_mb(_Params(bb.blocks[1]), stem, 8, 16, 12, 2, 3, 2)
        ref3 = _ref_res(_Params(bb.blocks[2]), c2, 2)
        ref4 = _ref_btn(_Params(bb.blocks[3]), c3, 2)
    torch.testing.assert_close(c2, ref2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c3, ref3, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c4, ref4, rtol=1e-5, atol=1e-5)


def test_build_from_arch_and_best_json(tmp_path):
    arch = pyddsar.presets["ddsar-0.5g"]
    m = build_detector(arch, neck_channels=24, stacked_convs=1, feat_channels=32, gn_groups=8)
    assert m.config.neck_channels == 24 and m.config.arch == str(arch)
    p = tmp_path / "best.json"
    p.write_text('{"structure": "%s", "score": 1.0}' % arch)
    assert build_detector(str(p)).config.arch == str(arch)
    assert build_detector(str(arch)).config.backbone == "ddsar"


def test_config_for_reads_architecture_files_through_arch_load(tmp_path):
    from pyddsar.models import config_for

    arch = pyddsar.presets["ddsar-0.5g"]
    p = tmp_path / "best_structure.txt"
    p.write_text(str(arch) + "\n")
    cfg = config_for(str(p))
    assert cfg.arch == str(pyddsar.Arch.load(str(p))) == str(arch) and cfg.name == "best_structure.txt"
    assert config_for(p).arch == str(arch)  # a pathlib.Path too
    bad = tmp_path / "broken.txt"
    bad.write_text("not an architecture")
    with pytest.raises(ValueError, match="broken.txt: "):  # Arch.load's message, naming the file
        config_for(str(bad))


@pytest.mark.parametrize("bad", ["nope", 3, {"neck": 3}])
def test_bad_names(bad):
    with pytest.raises(ValueError):
        build_detector(bad)


def test_bad_overrides_and_inputs():
    with pytest.raises(ValueError, match="unknown detector config keys"):
        build_detector("scrfd-0.5g", nonsense=1)
    with pytest.raises(ValueError, match="divisible"):
        build_detector("scrfd-2.5g", feat_channels=60)
    m = build_detector("scrfd-0.5g")
    with pytest.raises(ValueError, match="multiples of 32"):
        m(torch.zeros(1, 3, 100, 64))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        m(torch.zeros(3, 64, 64))
