"""lorac's kohya output, read by sd-scripts' own code (skipped without ``LORAC_SD_SCRIPTS``).

* ``config.toml`` through the script's ``setup_parser()`` + ``train_util.read_config_from_file``
  (what ``flux_train_network.py`` does at start-up): the namespace holds ``Artifacts.options``
  with the same types;
* the ``cli`` argv after the script through ``parser.parse_args``: the same namespace as the
  TOML route, option for option (defaults included);
* ``dataset.toml`` through ``ConfigSanitizer(...).sanitize_user_config`` as
  ``train_network.py:924`` builds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lorac.config.profile import Profile, resolve
from lorac.trainers.kohya.emitter import KohyaBackend, launch_argv, script_for
from tests.trainer.conftest import REPO, checkout, run_worker

pytestmark = pytest.mark.trainer

HOSTILE = """[profile]
family = "{family}"

[network]
network_module = "{module}"
network_dim = 8
network_alpha = 4
network_args = ["a=1", "b=it's \\"x\\"", "c=$(id) `x` naïve"]

[optimizer]
learning_rate = 1
optimizer_args = ["weight_decay=0.01"]
lr_warmup_steps = 0.1

[training]
output_name = "q'uo\\"te \\n new$line ☃"
resolution = "768,512"
gradient_checkpointing = true
cache_latents = false
max_train_steps = 10
seed = 7

[dataset]
resolution = 1024
network_multiplier = 1
caption_extension = ".txt"

[[dataset.subsets]]
image_dir = "data/subject dir"
class_tokens = "ohwx woman"
num_repeats = 2
face_crop_aug_range = [1, 2]

[[dataset.datasets]]
resolution = [768, 512]
[[dataset.datasets.subsets]]
image_dir = "data/b"
metadata_file = "meta.json"
"""


def _load(path: Path) -> Profile:
    res = resolve(path, env={})
    assert res.profile is not None, res.diagnostics
    return res.profile


def _profiles(tmp: Path) -> list[Profile]:
    out = [_load(REPO / "profiles" / f"{name}.toml") for name in ("fast", "final")]
    # one example per further family: lumina, hunyuan_image, anima and the FLUX script as Chroma
    examples = REPO / "profiles" / "examples" / "kohya"
    out += [_load(path) for path in sorted(examples.glob("*.toml"))]
    for family, module in (("flux1-dev", "networks.lora_flux"), ("sdxl", "networks.lora"),
                           ("sd15", "networks.lora"), ("sd3", "networks.lora_sd3")):
        path = tmp / "profiles" / f"hostile-{family}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = HOSTILE.format(family=family, module=module)
        if family == "sdxl":
            text = text.replace("[training]", "[training]\ncache_text_encoder_outputs = true")
        path.write_text(text, encoding="utf-8")
        out.append(_load(path))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def test_config_toml_and_cli_give_the_intended_namespace(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    for profile in _profiles(tmp_path):
        script = script_for(profile)
        build = tmp_path / "build" / profile.name
        toml_art = KohyaBackend().emit(profile, "toml")
        cli_art = KohyaBackend().emit(profile, "cli")
        for art in (toml_art, cli_art):
            build.mkdir(parents=True, exist_ok=True)
            for name, text in art.files.items():
                (build / name).write_text(text, encoding="utf-8")
        stem = script[:-3]
        from_toml = run_worker(sd, "config", stem, str(build / "config.toml"),
                               "--dataset_config", str(build / "dataset.toml"), tmp=tmp_path)
        for key, value in toml_art.options.items():
            assert _same(from_toml[key], value), (profile.name, key, from_toml[key], value)
        argv = launch_argv(cli_art.argv, sd, build)
        after = argv[argv.index(str(sd / script)) + 1:]
        from_cli = run_worker(sd, "cli", stem, *after, tmp=tmp_path)
        assert not cli_art.diagnostics
        from_toml.pop("config_file")
        from_cli.pop("config_file")
        assert from_toml.keys() == from_cli.keys()
        for key in from_toml:
            assert _same(from_toml[key], from_cli[key]), (profile.name, key, from_toml[key],
                                                          from_cli[key])


def test_dataset_toml_passes_config_sanitizer(tmp_path: Path) -> None:
    sd = checkout("LORAC_SD_SCRIPTS")
    for profile in _profiles(tmp_path):
        art = KohyaBackend().emit(profile, "toml")
        path = tmp_path / f"{profile.name}-dataset.toml"
        path.write_text(art.files["dataset.toml"], encoding="utf-8")
        sanitized = run_worker(sd, "dataset", str(path), tmp=tmp_path)
        datasets = profile.get("dataset")
        expected = len(datasets.get("datasets", [])) + (1 if datasets.get("subsets") else 0)
        assert len(sanitized["datasets"]) == expected
        first = sanitized["datasets"][0]["subsets"][0]
        assert first["image_dir"] == datasets["subsets"][0]["image_dir"]
        if "face_crop_aug_range" in datasets["subsets"][0]:  # [1, 2], floats once sanitized
            assert first["face_crop_aug_range"] == [1.0, 2.0]


def test_an_int_for_a_float_key_is_what_sanitizer_rejects(tmp_path: Path) -> None:
    """The reason the emitter converts: sd-scripts rejects ``network_multiplier = 1``."""

    sd = checkout("LORAC_SD_SCRIPTS")
    path = tmp_path / "raw.toml"
    path.write_text('[general]\nnetwork_multiplier = 1\n[[datasets]]\n[[datasets.subsets]]\n'
                    'image_dir = "x"\n', encoding="utf-8")
    with pytest.raises(AssertionError, match=r"MultipleInvalid|Invalid"):
        run_worker(sd, "dataset", str(path), tmp=tmp_path)
