"""The pyddsar detector file: round trip, checksum and config checks."""

import pytest

torch = pytest.importorskip("torch")

from pyddsar.model_file import Preprocessing, is_model_file, load_model, save_model  # noqa: E402
from pyddsar.models import build_detector  # noqa: E402


def test_round_trip_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_detector("ddsar-0.5g").eval()
    path = str(tmp_path / "m.pt")
    save_model(model, path, Preprocessing(score_threshold=0.3))
    assert is_model_file(path)
    loaded, pre = load_model(path)
    assert pre.score_threshold == 0.3 and loaded.config == model.config
    x = torch.randn(1, 3, 128, 160)
    a, b = model(x), loaded(x)
    for u, v in zip(a.cls + a.bbox, b.cls + b.bbox):
        assert torch.equal(u, v)


def test_corrupted_or_foreign_files_are_refused(tmp_path):
    model = build_detector("ddsar-0.5g")
    path = tmp_path / "m.pt"
    save_model(model, str(path))
    data = torch.load(str(path), weights_only=True)
    name = next(iter(data["state_dict"]))
    data["state_dict"][name] = data["state_dict"][name] + 1  # a flipped weight
    torch.save(data, str(tmp_path / "tampered.pt"))
    with pytest.raises(ValueError, match="checksum"):
        load_model(str(tmp_path / "tampered.pt"))
    raw = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable"):
        load_model(str(tmp_path / "truncated.pt"))
    torch.save({"weights": 1}, str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="not a pyddsar model file"):
        load_model(str(tmp_path / "other.pt"))
    assert not is_model_file(str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="weights file not found"):
        load_model(str(tmp_path / "missing.pt"))


def test_config_that_does_not_fit_the_weights_is_refused(tmp_path):
    from pyddsar.model_file import _checksum

    model = build_detector("ddsar-0.5g")
    path = tmp_path / "m.pt"
    save_model(model, str(path))
    data = torch.load(str(path), weights_only=True)
    other = build_detector("ddsar-2.5g").config.to_dict()
    data["config"] = other
    data["checksum"] = _checksum(other, data["preprocessing"], data["state_dict"])
    torch.save(data, str(tmp_path / "swapped.pt"))
    with pytest.raises(ValueError, match="do not match its config"):
        load_model(str(tmp_path / "swapped.pt"))
