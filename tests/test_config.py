import json
from pathlib import Path

import k_diffusion as K
import pytest

import kdiff_gc
from kdiff_gc import GeneratorInduced, Independent, MinibatchOT, schema
from kdiff_gc.coupling import COUPLINGS
from kdiff_gc.distances import DISTANCES
from kdiff_gc.schedules import WEIGHTINGS
from models import IMAGE_V1

ROOT = Path(__file__).resolve().parents[1]


def config(**consistency):
    return {"model": dict(IMAGE_V1), "consistency": consistency}


def test_defaults_are_the_paper_recipe():
    c = kdiff_gc.load_config(config())
    assert c["model"]["sigma_data"] == 0.5
    s = c["consistency"]
    assert (s["sigma_min"], s["sigma_max"], s["rho"]) == (0.002, 80.0, 7.0)
    assert s["curriculum"] == {"s0": 10, "s1": 1280}
    assert s["timestep_density"] == {"type": "lognormal", "p_mean": -1.1, "p_std": 2.0}
    assert s["distance"]["type"] == "pseudo_huber" and s["weighting"] == "improved"
    assert s["coupling"]["type"] == "generator_induced" and s["coupling"]["mu"] == 0.5
    assert s["coupling"]["generator"] == "ema"


# parameters of the official code's networks (thibautissenhuth/consistency_GC, edm_networks.py's SongUNet with
# each data set's configs/*_GC_mix50.yaml), counted by building them: a known value, not this project's
# computation
OFFICIAL_PARAMETERS = {"cifar10_gc": 34_711_811, "cifar10_ict": 34_711_811, "cifar10_ot": 34_711_811,
                       "celeba64_gc": 59_582_723, "imagenet32_gc": 39_479_683}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMETERS))
def test_paper_configs_run_as_the_official_code(name):
    """The official network's size within 10%, no gradient clipping, and ema-pytorch 0.2.3's EMA as the
    official code builds it (beta 0.9999, update_every 5, its default warm-up; ema_start 0, or ImageNet's
    default 10000)."""
    c = kdiff_gc.load_config(ROOT / "configs" / f"{name}.json")
    assert abs(K.utils.n_params(K.config.make_model(c)) / OFFICIAL_PARAMETERS[name] - 1) < 0.1
    assert c["training"]["grad_clip"] == 0
    assert c["ema_sched"] == {"type": "inverse", "inv_gamma": 1.0, "power": 2 / 3, "max_value": 0.9999,
                              "update_every": 5, "start_step": 10000 if name.startswith("imagenet") else 0}
    assert c["consistency"]["sigma_mid"] == 0.821


def test_overrides_merge_over_defaults_and_file_stays_loadable_by_k_diffusion(tmp_path):
    path = tmp_path / "c.json"
    raw = config(coupling={"mu": 0.3}, curriculum={"s1": 640})
    raw["model"]["sigma_data"] = 1.0
    path.write_text(json.dumps(raw))
    c = kdiff_gc.load_config(path)
    assert c["consistency"]["coupling"] == {"type": "generator_induced", "mu": 0.3, "mu_end": None,
                                           "start_step": 0, "generator": "ema", "generator_path": None,
                                           "teacher_path": None, "solver": "heun"}
    assert c["consistency"]["curriculum"] == {"s0": 10, "s1": 640}
    assert c["model"]["sigma_data"] == 1.0
    assert K.config.load_config(path)["consistency"] == raw["consistency"]


def test_builders():
    c = kdiff_gc.load_config(config(coupling={"type": "generator_induced", "mu": 0.2, "mu_end": 0.6,
                                              "start_step": 5},
                                    total_steps=50))
    loss = kdiff_gc.make_consistency_loss(c)
    assert isinstance(loss.coupling, GeneratorInduced)
    assert (loss.coupling.mu, loss.coupling.mu_end, loss.coupling.start_step) == (0.2, 0.6, 5)
    for kind, cls in (("independent", Independent), ("minibatch_ot", MinibatchOT)):
        assert isinstance(kdiff_gc.make_coupling(kdiff_gc.load_config(config(coupling={"type": kind}))), cls)
    model = kdiff_gc.make_denoiser(c)
    assert (isinstance(model, kdiff_gc.ConsistencyDenoiser) and model.sigma_min == 0.002
            and model.sigma_data == 0.5)


@pytest.mark.parametrize("section, message", [
    ({"colour": 1}, r"consistency\.colour: unknown key \(known keys: total_steps, sigma_min"),
    ({"coupling": {"mixing": 0.5}},
     r"consistency\.coupling\.mixing: unknown key \(known keys: type, mu, mu_end"),
    ({"coupling": {"mu": 1.5}}, r"consistency\.coupling\.mu = 1\.5: must be a number in \[0, 1\]"),
    ({"coupling": {"mu": -0.1}}, r"consistency\.coupling\.mu = -0\.1"),
    ({"coupling": {"mu_end": 2}}, r"consistency\.coupling\.mu_end = 2: must be a number in \[0, 1\] or null"),
    ({"curriculum": {"s0": 2000}},
     r"consistency\.curriculum\.s0 = 2000: must be at most consistency\.curriculum\.s1 \(1280\)"),
    ({"sigma_min": 80}, r"consistency\.sigma_min = 80: must be below consistency\.sigma_max \(80\.0\)"),
    ({"sigma_min": 0}, r"consistency\.sigma_min = 0: must be a positive number"),
    ({"coupling": {"type": "gc"}},
     r"consistency\.coupling\.type = \"gc\": must be one of 'independent', 'minibatch_ot', "
     r"'generator_induced'"),
    ({"coupling": {"generator": "teacher"}},
     r"consistency\.coupling\.generator = \"teacher\": must be one of 'ema', 'online', 'frozen'"),
    ({"coupling": {"solver": "rk4"}},
     r"consistency\.coupling\.solver = \"rk4\": must be one of 'heun', 'euler'"),
    ({"coupling": {"teacher_path": 3}},
     r"consistency\.coupling\.teacher_path = 3: must be a file path or null"),
    ({"total_steps": "100"}, r"consistency\.total_steps = \"100\": must be an integer >= 1"),
    ({"total_steps": True}, r"consistency\.total_steps = true: must be an integer"),
    ({"curriculum": {"s0": 2.5}}, r"consistency\.curriculum\.s0 = 2\.5: must be an integer"),
    ({"coupling": "gc"}, r"consistency\.coupling = \"gc\": must be an object"),
    ({"distance": {"type": "lpips"}},
     r"consistency\.distance\.type = \"lpips\": must be one of 'pseudo_huber', 'l2'"),
    ({"weighting": "snr"}, r"consistency\.weighting = \"snr\""),
    ({"total_steps": 10, "coupling": {"start_step": 10}},
     r"consistency\.coupling\.start_step = 10: must be below"),
])
def test_bad_values_name_the_key_the_value_and_what_is_allowed(section, message):
    with pytest.raises(ValueError, match=message):
        kdiff_gc.load_config(config(**section))


def test_bad_files_and_model_sections(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"model": {"type": "image_v1",}')
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        kdiff_gc.load_config(path)
    with pytest.raises(ValueError, match="model is missing: a config needs a 'model' section"):
        kdiff_gc.load_config({"consistency": {}})
    raw = config()
    raw["model"]["sigma_data"] = -1
    with pytest.raises(ValueError, match=r"model.sigma_data = -1: must be a number in \(0, 100\]"):
        kdiff_gc.load_config(raw)


def test_a_model_type_this_k_diffusion_lacks_is_refused_with_the_types_it_builds():
    # the PyPI release's make_model builds image_v1 and image_transformer_v1 (its models module has their
    # classes)
    assert hasattr(K.models, "ImageDenoiserModelV1") and hasattr(K.models, "ImageTransformerDenoiserModelV1")
    lacks_v2 = not hasattr(K.models, "ImageTransformerDenoiserModelV2")
    for kind in ["image_transformer_v2", "unet"] if lacks_v2 else ["unet"]:
        with pytest.raises(ValueError) as info:
            kdiff_gc.load_config({"model": {**IMAGE_V1, "type": kind}})
        message = str(info.value)
        assert message.startswith(f"model.type = {kind!r}: the installed k-diffusion (")
        assert "builds image_v1, image_transformer_v1" in message
        assert ("pip install git+https://github.com/crowsonkb/k-diffusion" in message) == lacks_v2


def test_every_program_prints_each_default_once():
    from kdiff_gc.programs import evaluate, sample, train

    for program in (train, sample, evaluate):
        text = program.build_parser().format_help()
        options = text.split("options:")[1].split("\n  -")  # one chunk per option
        assert all(chunk.count("(default") <= 1 for chunk in options), program.__name__
        assert "(default: None)" not in text
    words = " ".join(train.build_parser().format_help().split())  # unwrapped
    assert "the random seed (default: drawn, and saved in checkpoints) --num-workers" in words
    assert "(default: 500) --sample-n" in words  # --demo-every's, added by argparse


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "k_diffusion_configs").glob("*.json")) +
                         sorted((ROOT / "configs").glob("*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_k_diffusion_config_and_ours_passes_and_builds(path):
    """k-diffusion's own configs (tests/k_diffusion_configs/) with a consistency section added, and ours: the
    schema accepts each; those whose model the installed k-diffusion builds load and build."""
    raw = json.loads(path.read_text())
    raw.setdefault("consistency", {})
    schema.check(raw)
    if hasattr(K.models, schema.MODEL_TYPES[raw["model"]["type"]]):
        model = kdiff_gc.make_denoiser(kdiff_gc.load_config(raw))
        assert sum(p.numel() for p in model.parameters()) > 0
    else:
        with pytest.raises(ValueError, match="the installed k-diffusion"):
            kdiff_gc.load_config(raw)


def test_the_schema_names_what_the_code_builds():
    consistency = schema.CONSISTENCY["properties"]
    types = consistency["coupling"]["properties"]["type"]["enum"]
    assert types == list(COUPLINGS) == list(schema.COUPLING_TYPES)
    assert consistency["distance"]["properties"]["type"]["enum"] == list(DISTANCES)
    assert consistency["weighting"]["enum"] == list(WEIGHTINGS)


def test_the_config_reference_is_the_schema():
    assert (ROOT / "docs" / "config.md").read_text() == schema.reference(), \
        "run python -m kdiff_gc.schema > docs/config.md"


def test_a_typo_gets_the_closest_key_and_each_error_names_its_path():
    with pytest.raises(ValueError, match=r"^lr_shed: unknown key \(did you mean 'lr_sched'\?\)$"):
        schema.check({"model": dict(IMAGE_V1), "lr_shed": {}})
    with pytest.raises(ValueError, match=r"^model\.depths\[1\] = 0: must be an integer in \[1, 256\]$"):
        schema.check({"model": {**IMAGE_V1, "depths": [1, 0]}})
    with pytest.raises(ValueError, match=r"^optimizer\.lr = Infinity: must be a finite number$"):
        schema.check({"model": dict(IMAGE_V1), "optimizer": {"lr": float("inf")}})
