"""FLOPs and parameters of SCRFD's presets against the published table (640x480)."""

import pytest

from pyddsar.models import build_detector, complexity

PUBLISHED = {  # GFLOPs, M params (SCRFD README)
    "scrfd-0.5g": (0.508, 0.57),
    "scrfd-2.5g": (2.53, 0.67),
    "scrfd-10g": (9.98, 3.86),
    "scrfd-34g": (34.13, 9.80),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_scrfd_table(name):
    c = complexity(build_detector(name), (640, 480))
    gf, mp = PUBLISHED[name]
    assert abs(c.flops / 1e9 / gf - 1) < 0.01, c.flops
    # the table rounds to 0.01 M: within 1 % or the rounding
    assert abs(c.params / 1e6 - mp) <= max(0.01 * mp, 0.005), c.params
    assert sum(c.per_module.values()) == c.flops


def test_complexity_bad_resolution():
    m = build_detector("scrfd-0.5g")
    with pytest.raises(ValueError):
        complexity(m, (640,))
    with pytest.raises(ValueError):
        complexity(m, (0, 480))
