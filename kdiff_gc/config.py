"""Configs: k-diffusion's ``load_config`` plus a validated ``"consistency"`` section.

The plugin's settings live in that one section, so the file stays loadable by k-diffusion's own
``load_config``. Its defaults are the paper's CIFAR-10 recipe (Issenhuth et al., arXiv 2406.09570,
which follows iCT, arXiv 2310.14189).
"""

import json
from importlib.metadata import version
from numbers import Integral, Real
from pathlib import Path

import torch
from jsonmerge import merge
from k_diffusion import config as k_config, models as k_models, utils as k_utils

from .coupling import COUPLINGS, Distillation, GeneratorInduced
from .denoiser import ConsistencyDenoiser
from .distances import DISTANCES
from .schedules import WEIGHTINGS
from .training import ConsistencyLoss

MODEL_DEFAULTS = {"model": {"sigma_data": 0.5}}

CONSISTENCY_DEFAULTS = {
    "total_steps": 100000,
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "rho": 7.0,
    "curriculum": {"s0": 10, "s1": 1280},
    "timestep_density": {"type": "lognormal", "p_mean": -1.1, "p_std": 2.0},
    "distance": {"type": "pseudo_huber", "c": None},
    "weighting": "improved",
    "coupling": {"type": "generator_induced", "mu": 0.5, "mu_end": None, "start_step": 0, "generator": "ema",
                 "generator_path": None, "teacher_path": None, "solver": "heun"},
}


def _integer(lo):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, Integral) or v < lo:
            return f"an integer >= {lo}"
    return check


def _number(lo=None, hi=None, positive=False, nullable=False):
    def check(v):
        if v is None and nullable:
            return None
        ok = not isinstance(v, bool) and isinstance(v, Real)
        ok = ok and (lo is None or v >= lo) and (hi is None or v <= hi) and (not positive or v > 0)
        if not ok:
            what = f"a number in [{lo}, {hi}]" if lo is not None else "a positive number" if positive else "a number"
            return what + (" or null" if nullable else "")
    return check


def _path_or_null(v):
    if v is not None and not (isinstance(v, str) and v):
        return "a file path or null"


def _one_of(*choices):
    def check(v):
        if v not in choices:
            return "one of " + ", ".join(repr(c) for c in choices)
    return check


TRAINING_DEFAULTS = {"batch_size": 64, "grad_clip": 1.0}
TRAINING_SCHEMA = {"batch_size": _integer(1), "grad_clip": _number(lo=0, hi=float("inf"))}

SCHEMA = {
    "total_steps": _integer(1),
    "sigma_min": _number(positive=True),
    "sigma_max": _number(positive=True),
    "rho": _number(positive=True),
    "curriculum": {"s0": _integer(1), "s1": _integer(1)},
    "timestep_density": {"type": _one_of("lognormal"), "p_mean": _number(), "p_std": _number(positive=True)},
    "distance": {"type": _one_of(*DISTANCES), "c": _number(positive=True, nullable=True)},
    "weighting": _one_of(*WEIGHTINGS),
    "coupling": {"type": _one_of(*COUPLINGS), "mu": _number(0, 1), "mu_end": _number(0, 1, nullable=True),
                 "start_step": _integer(0), "generator": _one_of("ema", "online", "frozen"),
                 "generator_path": _path_or_null, "teacher_path": _path_or_null, "solver": _one_of("heun", "euler")},
}


def _bad(path: str, value, allowed: str) -> ValueError:
    return ValueError(f"{path} = {json.dumps(value)}: must be {allowed}")


def _validate(section, schema, path: str) -> None:
    if not isinstance(section, dict):
        raise _bad(path, section, "an object")
    for key in section:
        if key not in schema:
            raise ValueError(f"{path}.{key}: unknown key (allowed: {', '.join(schema)})")
    for key, rule in schema.items():
        if isinstance(rule, dict):
            _validate(section[key], rule, f"{path}.{key}")
        elif (allowed := rule(section[key])) is not None:
            raise _bad(f"{path}.{key}", section[key], allowed)


def _validate_relations(c: dict) -> None:
    if c["sigma_min"] >= c["sigma_max"]:
        raise _bad("consistency.sigma_min", c["sigma_min"], f"below consistency.sigma_max ({c['sigma_max']})")
    if c["curriculum"]["s0"] > c["curriculum"]["s1"]:
        raise _bad("consistency.curriculum.s0", c["curriculum"]["s0"],
                   f"at most consistency.curriculum.s1 ({c['curriculum']['s1']})")
    if c["coupling"]["start_step"] >= c["total_steps"]:
        raise _bad("consistency.coupling.start_step", c["coupling"]["start_step"],
                   f"below consistency.total_steps ({c['total_steps']})")


def _read(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        return path_or_dict
    path = Path(path_or_dict)
    if path.suffix == ".safetensors":
        return json.loads(k_utils.get_safetensors_metadata(path)["config"])
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


# k-diffusion's model types and the classes its ``make_model`` builds them with
MODEL_CLASSES = {"image_v1": "ImageDenoiserModelV1", "image_transformer_v1": "ImageTransformerDenoiserModelV1",
                 "image_transformer_v2": "ImageTransformerDenoiserModelV2"}


def _check_model_type(kind) -> None:
    """The installed k-diffusion must build ``kind``: its release on PyPI (0.1.1) lacks image_transformer_v2."""
    built = [k for k, cls in MODEL_CLASSES.items() if hasattr(k_models, cls)]
    if kind not in built:
        later = [k for k in MODEL_CLASSES if k not in built]
        hint = (f"; {' and '.join(later)} comes with k-diffusion from its GitHub repository (pip install "
                "git+https://github.com/crowsonkb/k-diffusion), which kdiff-gc is not tested with") if later else ""
        raise ValueError(f"model.type = {kind!r}: the installed k-diffusion ({version('k-diffusion')}) builds "
                         f"{', '.join(built)}{hint}")


def load_config(path_or_dict: str | Path | dict) -> dict:
    """k-diffusion's ``load_config``, then the ``"consistency"`` and ``"training"`` sections merged over
    their defaults (``training``: the global ``batch_size`` and the gradient-norm clip, 0 for none).

    ``model.sigma_data`` defaults to the paper's 0.5 (k-diffusion's own default is 1). Any bad
    value raises one ``ValueError`` naming the key path, the value and what is allowed.
    """
    raw = _read(path_or_dict)
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict) or "type" not in raw["model"]:
        raise ValueError("config: must be an object with a \"model\" section that names its \"type\"")
    _check_model_type(raw["model"]["type"])
    config = k_config.load_config(merge(MODEL_DEFAULTS, raw))
    if (allowed := _number(positive=True)(config["model"]["sigma_data"])) is not None:
        raise _bad("model.sigma_data", config["model"]["sigma_data"], allowed)
    config["consistency"] = merge(CONSISTENCY_DEFAULTS, config.get("consistency", {}))
    _validate(config["consistency"], SCHEMA, "consistency")
    _validate_relations(config["consistency"])
    config["training"] = merge(TRAINING_DEFAULTS, config.get("training", {}))
    _validate(config["training"], TRAINING_SCHEMA, "training")
    return config


# keys of a k-diffusion model section that consistency training does not read, and what it reads instead
UNUSED_MODEL_KEYS = {"sigma_min": "consistency.sigma_min", "sigma_max": "consistency.sigma_max",
                     "loss_weighting": "consistency.weighting", "sigma_sample_density": "consistency.timestep_density"}


def unused_model_keys(raw: dict, config: dict) -> list[str]:
    """One notice per key of the raw config's model section that consistency training ignores, where the
    value differs from the one it uses instead (a diffusion ``loss_config`` is also named)."""
    model, notices = raw.get("model", {}), []
    for key, instead in UNUSED_MODEL_KEYS.items():
        used = config["consistency"][instead.split(".")[1]]
        if key in model and model[key] != used:
            notices.append(f"notice: model.{key} = {json.dumps(model[key])} is not used; {instead} = "
                           f"{json.dumps(used)} is")
    if model.get("loss_config", "consistency") != "consistency":
        notices.append(f"notice: model.loss_config = {json.dumps(model['loss_config'])} is not used; the consistency "
                       "section's loss is")
    return notices


def differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted key paths where two configs differ (a key present in one only counts)."""
    keys = []
    for key in sorted(a.keys() | b.keys(), key=str):
        path, x, y = f"{prefix}{key}", a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            keys += differing_keys(x, y, path + ".")
        elif key not in a or key not in b or x != y:
            keys.append(path)
    return keys


def make_coupling(config: dict, generator: torch.nn.Module | None = None, teacher: torch.nn.Module | None = None):
    """The coupling that ``config["consistency"]["coupling"]`` names. ``generator`` is the frozen GC
    generator (``"generator": "frozen"``), ``teacher`` the denoiser of ``"type": "distillation"``;
    the training program loads them from ``generator_path`` and ``teacher_path``."""
    c = config["consistency"]["coupling"]
    kind = c["type"]
    if kind == "generator_induced":
        if c["generator"] == "frozen" and generator is None:
            raise ValueError("consistency.coupling.generator = \"frozen\": pass the frozen model as generator=")
        return GeneratorInduced(c["mu"], c["mu_end"], c["start_step"], generator if generator is not None else c["generator"])
    if kind == "distillation":
        if teacher is None:
            raise ValueError("consistency.coupling.type = \"distillation\": pass the teacher denoiser as teacher=")
        return Distillation(teacher, c["solver"])
    return COUPLINGS[kind]()


def make_consistency_loss(config: dict, generator: torch.nn.Module | None = None,
                          teacher: torch.nn.Module | None = None) -> ConsistencyLoss:
    """The loss step of a loaded config."""
    c = config["consistency"]
    density = c["timestep_density"]
    return ConsistencyLoss(make_coupling(config, generator, teacher), sigma_min=c["sigma_min"], sigma_max=c["sigma_max"],
                           rho=c["rho"], s0=c["curriculum"]["s0"], s1=c["curriculum"]["s1"],
                           p_mean=density["p_mean"], p_std=density["p_std"], distance=c["distance"]["type"],
                           huber_c=c["distance"]["c"], weighting=c["weighting"])


def make_denoiser(config: dict) -> ConsistencyDenoiser:
    """k-diffusion's ``make_model`` for the inner model, wrapped in :class:`ConsistencyDenoiser`."""
    return ConsistencyDenoiser(k_config.make_model(config), sigma_data=config["model"]["sigma_data"],
                               sigma_min=config["consistency"]["sigma_min"])
