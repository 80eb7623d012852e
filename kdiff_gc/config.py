"""Configs: k-diffusion's ``load_config`` plus a validated ``"consistency"`` section.

The plugin's settings live in that one section, so the file stays loadable by k-diffusion's own
``load_config``. Its defaults are the paper's CIFAR-10 recipe (Issenhuth et al., arXiv 2406.09570,
which follows iCT, arXiv 2310.14189).
"""

import json
import sys
from importlib.metadata import version
from pathlib import Path

import safetensors
from jsonmerge import merge
from k_diffusion import config as k_config, models as k_models, utils as k_utils

from . import schema
from .checkpoint import not_a_file
from .coupling import COUPLINGS, MODEL_FILES

MODEL_DEFAULTS = {"model": schema.defaults(schema.MODEL)}
TRAINING_DEFAULTS = schema.defaults(schema.TRAINING)


def _bad(path: str, value, allowed: str) -> ValueError:
    return ValueError(f"{path} = {json.dumps(value)}: must be {allowed}")


def _same_lengths(section: dict, prefix: str, *keys: str) -> None:
    lengths = {key: len(section[key]) for key in keys if isinstance(section.get(key), list)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{prefix}: {', '.join(lengths)} must have one entry per level, but have "
                         f"{', '.join(map(str, lengths.values()))}")


def _check_relations(config: dict) -> None:
    """What the schema cannot say: relations between keys, on the config merged over its defaults."""
    m, c = config["model"], config["consistency"]
    size = m["input_size"]
    if size[0] != size[1]:
        raise _bad("model.input_size", size, "square (k-diffusion trains square images)")
    if m["type"] == "image_v1":
        _same_lengths(m, "model", "depths", "channels", "self_attn_depths", "cross_attn_depths")
        factor = m["patch_size"] * 2 ** (len(m["depths"]) - 1)
        if size[0] % factor:
            raise _bad("model.input_size", size, f"a multiple of {factor} (patch_size x 2^(levels - 1), the "
                       "U-Net's downsampling)")
        if m["skip_stages"] >= len(m["depths"]):
            raise _bad("model.skip_stages", m["skip_stages"],
                       f"below the number of levels ({len(m['depths'])})")
        if isinstance(m["dropout_rate"], list):
            raise _bad("model.dropout_rate", m["dropout_rate"], "one number for image_v1")
        if any(m["cross_attn_depths"] or []):
            raise _bad("model.cross_attn_depths", m["cross_attn_depths"], "all false: consistency training "
                       "passes no cross-attention condition")
        if config["dataset"]["num_classes"]:
            raise _bad("dataset.num_classes", config["dataset"]["num_classes"], "0 for image_v1, which takes "
                       "no classes (a class-conditional model is an image_transformer)")
    else:
        patch = m["patch_size"] if isinstance(m["patch_size"], list) else [m["patch_size"]] * 2
        _same_lengths(m, "model", "depths", "widths", "self_attns", "d_ffs", "dropout_rate")
        if size[0] % patch[0] or size[1] % patch[1]:
            raise _bad("model.input_size", size, f"a multiple of model.patch_size ({m['patch_size']})")
    if m["type"] == "image_transformer_v1":
        if not isinstance(m["patch_size"], list):
            raise _bad("model.patch_size", m["patch_size"], f"a pair for image_transformer_v1, e.g. "
                       f"[{m['patch_size']}, {m['patch_size']}]")
        if m["width"] % 64:
            raise _bad("model.width", m["width"], "a multiple of 64 (image_transformer_v1's head size)")
    if c["sigma_min"] >= c["sigma_max"]:
        raise _bad("consistency.sigma_min", c["sigma_min"], f"below consistency.sigma_max ({c['sigma_max']})")
    if not c["sigma_min"] < c["sigma_mid"] < c["sigma_max"]:
        raise _bad("consistency.sigma_mid", c["sigma_mid"],
                   f"between consistency.sigma_min ({c['sigma_min']}) and consistency.sigma_max "
                   f"({c['sigma_max']})")
    if c["curriculum"]["s0"] > c["curriculum"]["s1"]:
        raise _bad("consistency.curriculum.s0", c["curriculum"]["s0"],
                   f"at most consistency.curriculum.s1 ({c['curriculum']['s1']})")
    if c["coupling"]["start_step"] >= c["total_steps"]:
        raise _bad("consistency.coupling.start_step", c["coupling"]["start_step"],
                   f"below consistency.total_steps ({c['total_steps']})")


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose keys are unique: with ``"lr": 1e-4, "lr": 5`` the last would win in silence."""
    found = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f'the key "{key}" appears twice in one object: keep one')
        found[key] = value
    return found


def parse_json(text: str):
    """A config's JSON value; a ``ValueError`` says what is wrong with the text: not JSON, nested too deeply
    for Python to read, a number longer than Python reads, a key given twice."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None
    except ValueError as e:  # Python's limit on the digits of an integer it converts
        if "digits" not in str(e):
            raise
        limit = sys.get_int_max_str_digits()
        raise ValueError(f"holds a number of more than {limit} digits, which no config value needs") from None


def inference_file_config(path: Path) -> dict | None:
    """The config an inference file (safetensors) carries as JSON in its metadata, as k-diffusion writes it,
    or None where it carries none: the one place that reads it. A ``ValueError`` says what is wrong with the
    file."""
    try:
        metadata = k_utils.get_safetensors_metadata(path) or {}
    except (OSError, RuntimeError, safetensors.SafetensorError) as e:
        raise ValueError(f"not a readable safetensors file ({e})") from None
    if "config" not in metadata:
        return None
    try:
        return parse_json(metadata["config"])
    except ValueError as e:
        raise ValueError(f"damaged: its metadata's config is {e}") from None


def _read(path: str | Path):
    """The JSON value of a config file (or of an inference file's metadata); a ``ValueError`` says what is
    wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(not_a_file(path))
    if path.suffix == ".safetensors":
        if (config := inference_file_config(path)) is None:
            raise ValueError("an inference file without a config in its metadata")
        return config
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError("not valid JSON (not UTF-8 text)") from None
    except OSError as e:
        raise ValueError(f"not readable ({e})") from None
    return parse_json(text)


def _check_model_type(kind) -> None:
    """The installed k-diffusion must build ``kind``: its release on PyPI (0.1.1) lacks
    image_transformer_v2."""
    built = [k for k, cls in schema.MODEL_TYPES.items() if hasattr(k_models, cls)]
    if kind not in built:
        later = [k for k in schema.MODEL_TYPES if k not in built]
        hint = (f"; {' and '.join(later)} comes with k-diffusion from its GitHub repository (pip install "
                "git+https://github.com/crowsonkb/k-diffusion), which kdiff-gc is not tested with"
                if later else "")
        raise ValueError(f"model.type = {kind!r}: the installed k-diffusion ({version('k-diffusion')}) "
                         f"builds {', '.join(built)}{hint}")


def load_config(path_or_dict: str | Path | dict) -> dict:
    """The config checked against :mod:`kdiff_gc.schema`, then k-diffusion's ``load_config``, then the
    ``"consistency"`` and ``"training"`` sections merged over their defaults (``training``: the global
    ``batch_size`` and the gradient-norm clip, 0 for none), then the relations between keys checked.

    ``model.sigma_data`` defaults to the paper's 0.5 (k-diffusion's own default is 1). Any bad
    value raises one ``ValueError`` naming the key path, the value and what is allowed.
    """
    if isinstance(path_or_dict, (str, Path)):
        try:
            return load_config_value(_read(path_or_dict))
        except ValueError as e:
            raise ValueError(f"{path_or_dict}: {e}") from None
    return load_config_value(path_or_dict)


def load_config_value(raw) -> dict:
    """:func:`load_config` of a config's value (from a checkpoint or a file's metadata): never a path."""
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict) \
            and isinstance(raw["model"].get("type"), str):
        _check_model_type(raw["model"]["type"])  # first: it says which types the installed k-diffusion builds
    schema.check(raw)
    config = k_config.load_config(merge(MODEL_DEFAULTS, raw))
    # read at each load: a coupling registered since adds its options' defaults
    config["consistency"] = merge(schema.defaults(schema.CONSISTENCY), config.get("consistency", {}))
    config["training"] = merge(TRAINING_DEFAULTS, config.get("training", {}))
    _check_relations(config)
    return config


def read_training_config(path: str | Path) -> tuple[dict, list[str]]:
    """The config a training run reads, and its notices (:func:`unused_model_keys`). Beyond
    :func:`load_config`'s checks, it must opt in to consistency training (a ``"consistency"`` section or
    ``model.loss_config = "consistency"``, so that a diffusion config is not trained as one by mistake), and
    name the files of the models its coupling takes (a frozen GC generator, a distillation teacher). A
    ``ValueError`` starts with the path."""
    try:
        raw = _read(path)
        if isinstance(raw, dict) and "consistency" not in raw and isinstance(raw.get("model"), dict) \
                and raw["model"].get("loss_config") != "consistency":
            raise ValueError('a diffusion config: add a "consistency" section (it may be {}) or set '
                             'model.loss_config to "consistency"')
        config = load_config_value(raw)
        coupling = config["consistency"]["coupling"]
        for name, kind in COUPLINGS[coupling["type"]].models(coupling).items():
            if not coupling[f"{name}_path"]:
                raise ValueError(f'consistency.coupling.type "{coupling["type"]}" takes its {name} from a '
                                 f"file here: set consistency.coupling.{name}_path to {MODEL_FILES[kind]}")
        return config, unused_model_keys(raw, config)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


# keys of a k-diffusion model section that consistency training does not read, and what it reads instead
UNUSED_MODEL_KEYS = {"sigma_min": "consistency.sigma_min", "sigma_max": "consistency.sigma_max",
                     "loss_weighting": "consistency.weighting",
                     "sigma_sample_density": "consistency.timestep_density"}


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
        notices.append(f"notice: model.loss_config = {json.dumps(model['loss_config'])} is not used; the "
                       "consistency section's loss is")
    return notices


def has_key(config: dict, path: str) -> bool:
    """Whether ``config`` holds the dotted key ``path``."""
    for part in path.split("."):
        if not isinstance(config, dict) or part not in config:
            return False
        config = config[part]
    return True


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
