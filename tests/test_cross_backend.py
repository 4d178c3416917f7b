"""One profile, two trainers: musubi-tuner and ai-toolkit build the same Wan/FLUX/Qwen-Image
profile, and the build says what changes in meaning (LRC671/LRC672 for musubi, LRC608/LRC609/
LRC692 for ai-toolkit). The property: over every example profile of a family both trainers
train, built for each of them, every key carries over or is reported once, and the model named
never changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomllib

from lorac.config.profile import Profile, resolve
from lorac.config.trainer_values import for_trainer, native
from lorac.trainers.ai_toolkit.emitter import AiToolkitBackend, load_mapping
from lorac.trainers.musubi import crossing, knowledge
from lorac.trainers.musubi.emitter import MusubiBackend
from tests.conftest import REPO, resolved

#: The codes of the cross-backend reports (and the model errors of both emitters).
CROSS = {"LRC608", "LRC609", "LRC692", "LRC650", "LRC661", "LRC671", "LRC672"}

WAN = """\
[profile]
family = "wan2.1-t2v-1.3b"
backend = "ai-toolkit"
trigger = "ohwx"

[model]
pretrained_model_name_or_path = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

[network]
network_module = "networks.lora"
network_dim = 16
network_alpha = 8

[optimizer]
optimizer_type = "AdamW8bit"
learning_rate = 1e-4

[training]
max_train_steps = 500
mixed_precision = "bf16"
cache_text_encoder_outputs = true
timestep_sampling = "shift"
fp8_base = true
seed = 1

[saving]
output_dir = "output"

[dataset]
resolution = 512
caption_extension = ".txt"

[[dataset.subsets]]
image_dir = "data"
num_repeats = 2
class_tokens = "ohwx woman"
shuffle_caption = true

[trainers.musubi]
dit = "/m/wan2.1_t2v_1.3B_bf16.safetensors"
vae = "/m/wan_2.1_vae.safetensors"
t5 = "/m/models_t5_umt5-xxl-enc-bf16.pth"

[trainers.ai-toolkit.train]
timestep_type = "weighted"
"""


def _by_key(diags: list[Any]) -> dict[tuple[Any, ...], list[Any]]:
    out: dict[tuple[Any, ...], list[Any]] = {}
    for d in diags:
        out.setdefault(tuple(d.key_path), []).append(d)
    return out


def test_wan21_for_musubi_reports_each_change_of_meaning(tmp_path: Path) -> None:
    profile = resolved(tmp_path, WAN).profile
    art = MusubiBackend().emit(for_trainer(profile, "musubi"), "toml")
    keys = _by_key(art.diagnostics)
    codes = {k: [d.code for d in v] for k, v in keys.items()}
    assert "LRC650" not in {d.code for d in art.diagnostics}  # translated, not refused
    assert all(len(v) == 1 for v in codes.values()), codes
    expect = {
        ("network", "network_alpha"): ("LRC672", "alpha = rank", "lora.py:94", "= 0.5"),
        ("network", "network_module"): ("LRC672", "networks.lora_wan", "lora_wan.py:19"),
        ("training", "timestep_sampling"): ("LRC672", "custom_flowmatch_sampler.py:134",
                                            "parser_common.py:459"),
        ("training", "mixed_precision"): ("LRC672", "BaseSDTrainProcess.py:1505",
                                          "trainer_base.py:1462"),
        ("training", "fp8_base"): ("LRC672", "qfloat8", "float8_e4m3fn"),
        ("profile", "trigger"): ("LRC672", "dataloader_mixins.py"),
        ("model", "pretrained_model_name_or_path"): ("LRC672", "dit = /m/wan2.1_t2v_1.3B"),
        ("training", "cache_text_encoder_outputs"): ("LRC672", "own step"),
        ("training", "sdpa"): ("LRC672", "trainer_base.py:1513"),
        ("saving", "output_name"): ("LRC672", "parser_common.py:610"),
        ("dataset", "subsets", 0, "class_tokens"): ("LRC671", "left out"),
        ("dataset", "subsets", 0, "shuffle_caption"): ("LRC671", "left out"),
        ("trainers", "ai-toolkit", "train", "timestep_type"): ("LRC671", "train.timestep_type"),
    }
    for kp, (code, *words) in expect.items():
        (d,) = keys[kp]
        assert d.code == code, (kp, d)
        for word in words:
            assert word in d.message, (kp, word, d.message)
    assert keys[("dataset", "subsets", 0, "class_tokens")][0].hint.count("#875") == 1
    opts = art.options
    assert opts["network_module"] == "networks.lora_wan"
    assert opts["task"] == "t2v-1.3B"  # the family's --task
    assert opts["dit"] == "/m/wan2.1_t2v_1.3B_bf16.safetensors"
    assert opts["network_alpha"] == 8.0 and opts["sdpa"] is True
    assert "pretrained_model_name_or_path" not in opts
    assert "cache_text_encoder_outputs" not in opts
    dataset = tomllib.loads(art.files["dataset.toml"])
    assert dataset["datasets"] == [{"image_directory": "data", "num_repeats": 2}]
    assert dataset["general"] == {"resolution": 512, "caption_extension": ".txt"}


def test_wan21_for_ai_toolkit_and_from_a_musubi_profile(tmp_path: Path) -> None:
    profile = resolved(tmp_path, WAN).profile
    art = AiToolkitBackend().emit(for_trainer(profile, "ai-toolkit"), "yaml")
    (alpha,) = _by_key(art.diagnostics)[("network", "network_alpha")]
    assert alpha.code == "LRC609" and "overwrites the alpha with the rank (16)" in alpha.message
    musubi_text = (REPO / "profiles/examples/musubi/wan2.1-t2v-1.3b.toml").read_text()
    mus = resolved(tmp_path / "m", musubi_text.replace(
        'pretrained_model_name_or_path = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"', "")).profile
    art = AiToolkitBackend().emit(for_trainer(mus, "ai-toolkit"), "yaml")
    keys = _by_key(art.diagnostics)
    (missing,) = keys[("model", "pretrained_model_name_or_path")]
    assert missing.code == "LRC692" and "wan2.1_t2v_1.3B_bf16" in missing.message
    assert "parser_common.py:459" not in str(keys)  # discrete_flow_shift is set: no shift note
    (module,) = keys[("network", "network_module")]
    assert module.code == "LRC609" and "lora_wan.py:16" in module.message
    (frames,) = keys[("training", "mixed_precision")]
    assert "trainer_base.py:1462" in frames.message
    process = art.options["config"]["process"][0]
    assert process["datasets"][0]["folder_path"] == "examples/subject"


# --------------------------------------------------------------------------- the property


def _shared_examples() -> list[Path]:
    shared = set(knowledge.families()) & set(load_mapping()["families"])
    out = []
    for folder in ("musubi", "ai-toolkit"):
        for path in sorted((REPO / "profiles" / "examples" / folder).glob("*.toml")):
            fam = tomllib.loads(path.read_text()).get("profile", {}).get("family")
            if fam in shared:
                out.append(path)
    return out


def _leaves(table: Any, base: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(table, dict):
        return [x for k, v in table.items() for x in _leaves(v, (*base, k))]
    if isinstance(table, list) and table and all(isinstance(v, dict) for v in table):
        return [x for i, v in enumerate(table) for x in _leaves(v, (*base, i))]
    return [(base, table)]


def _dig(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return KeyError
        tree = tree[part]
    return tree


def _carried_musubi(profile: Profile, art: Any) -> set[tuple[Any, ...]]:
    carried = {kp for name, (value, kp) in profile.options().items()
               if art.options.get(name, KeyError) == value}
    data = tomllib.loads(art.files["dataset.toml"])
    tables = [data.get("general", {}), *data.get("datasets", [])]
    rename = crossing.facts()["dataset_rename"]
    for kp, value in _leaves(profile.get("dataset") or {}, ("dataset",)):
        name = rename.get(kp[-1], kp[-1])
        if any(t.get(name, KeyError) == value for t in tables):
            carried.add(kp)
    return carried


def _carried_ai_toolkit(profile: Profile, art: Any) -> set[tuple[Any, ...]]:
    mapping = load_mapping()
    process = art.options["config"]["process"][0]
    carried = set()
    for name, (_, kp) in profile.options().items():
        to = mapping["options"].get(name, {}).get("to")
        if to is None:
            continue
        section, _, rest = to.partition(".")
        where = {"process": process, "config": art.options["config"]}.get(section)
        found = _dig(where, rest) if where is not None else _dig(process, to)
        if section == "datasets":
            found = _dig(process["datasets"][0], rest) if process["datasets"] else KeyError
        if found is not KeyError:
            carried.add(kp)
    for kp, _ in _leaves(profile.get("dataset") or {}, ("dataset",)):
        spec = mapping["dataset"].get(kp[-1], {})
        to = spec.get("to", "")
        in_entries = to.startswith("datasets.")
        target = process["datasets"] if in_entries else [process]
        key = to.split(".", 1)[-1] if in_entries else to
        if "implied" in spec or any(_dig(t, key) is not KeyError for t in target if to):
            carried.add(kp)
    return carried


@pytest.mark.parametrize("path", _shared_examples(), ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.parametrize("backend", ["musubi", "ai-toolkit"])
def test_every_key_carries_over_or_is_reported_once(path: Path, backend: str) -> None:
    res = resolve(path, env={})
    assert res.profile is not None
    profile = for_trainer(res.profile, backend)
    if backend == "musubi":
        art = MusubiBackend().emit(profile, "toml")
        carried = _carried_musubi(profile, art)
    else:
        art = AiToolkitBackend().emit(profile, "yaml")
        carried = _carried_ai_toolkit(profile, art)
    reports = _by_key([d for d in art.diagnostics if d.code in CROSS])
    twice = {kp: [d.message for d in v] for kp, v in reports.items() if len(v) > 1}
    assert not twice, twice
    keys = [kp for _, kp in profile.options().values()]
    keys += [kp for kp, _ in _leaves(profile.get("dataset") or {}, ("dataset",))]
    for other in ("musubi", "ai-toolkit"):
        if other != backend:
            keys += [("trainers", other, s, k) for s, t in native(profile, other).items()
                     for k in t]
    silent = [kp for kp in keys if kp not in carried and kp not in reports]
    assert not silent, f"lost without a word: {silent}"

    # the model named never changes
    options = profile.options()
    if backend == "musubi":
        p = knowledge.plan_for(profile.family)
        assert p is not None
        for name, _ in crossing.model_files(p):
            if name in options:
                assert art.options[name] == options[name][0]
            else:  # never invented: the build says it is needed
                assert name not in art.options
                assert any(d.code == "LRC661" and name in d.message for d in art.diagnostics)
        for name, value in p.family.variant.items():
            assert art.options.get(name) == options.get(name, (value,))[0]
    else:
        model = art.options["config"]["process"][0]["model"]
        chosen = profile.get("trainers", "ai-toolkit", "model", "arch")
        assert model["arch"] == (chosen or load_mapping()["families"][profile.family]["arch"])
        if "pretrained_model_name_or_path" in options:
            assert model["name_or_path"] == options["pretrained_model_name_or_path"][0]
        else:
            assert "name_or_path" not in model
            assert "LRC692" in {d.code for d in art.diagnostics}


@pytest.mark.parametrize("backend", ["musubi", "ai-toolkit"])
def test_a_lycoris_module_is_kept_or_reported_once(tmp_path: Path, backend: str) -> None:
    text = WAN.replace('network_module = "networks.lora"', 'network_module = "lycoris.kohya"')
    if backend == "ai-toolkit":
        text = text.replace('backend = "ai-toolkit"', 'backend = "musubi"')
    profile = for_trainer(resolved(tmp_path, text).profile, backend)
    if backend == "musubi":  # musubi-tuner loads LyCORIS itself: carried as it is
        art = MusubiBackend().emit(profile, "toml")
        assert art.options["network_module"] == "lycoris.kohya"
        assert ("network", "network_module") not in _by_key(art.diagnostics)
    else:  # ai-toolkit has no such value: left out, said once
        art = AiToolkitBackend().emit(profile, "yaml")
        (d,) = _by_key(art.diagnostics)[("network", "network_module")]
        assert d.code == "LRC608"


def test_musubi_shaped_datasets_of_another_trainers_profile_are_checked_too(
        tmp_path: Path) -> None:
    text = WAN.replace("""[[dataset.subsets]]
image_dir = "data"
num_repeats = 2
class_tokens = "ohwx woman"
shuffle_caption = true
""", """keep_tokens = 1

[[dataset.datasets]]
image_directory = "data"
flip_aug = true
""")
    art = MusubiBackend().emit(for_trainer(resolved(tmp_path, text).profile, "musubi"), "toml")
    keys = _by_key(art.diagnostics)
    assert [d.code for d in keys[("dataset", "keep_tokens")]] == ["LRC671"]
    assert [d.code for d in keys[("dataset", "datasets", 0, "flip_aug")]] == ["LRC671"]
    dataset = tomllib.loads(art.files["dataset.toml"])
    assert dataset["general"] == {"resolution": 512, "caption_extension": ".txt"}
    assert dataset["datasets"] == [{"image_directory": "data"}]
