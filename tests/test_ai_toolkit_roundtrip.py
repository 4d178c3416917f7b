"""Every ``config/examples`` job of the pinned ai-toolkit, imported into a profile and built
back: each key that has a meaning for ai-toolkit survives (tests/fixtures/SOURCES.md).

"Survives" is judged as ai-toolkit reads the job: a key may come back under the spelling
ai-toolkit treats as the same (``network.rank`` / ``linear``), written the way it normalises it
(a caption extension with its dot, :943; a dtype name, toolkit/train_tools.py), or be left out
when its value is ai-toolkit's default; ``is_*`` flags survive as the arch they select. A job
whose ``train.gradient_accumulation_steps`` N > 1 counts batches as steps
(jobs/process/BaseSDTrainProcess.py:2604-2611): it survives as ``gradient_accumulation: N`` with
its step counts divided by N, the same optimizer steps of the same batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorac.config.inventory import load_ai_toolkit_keys, load_backend_toml
from lorac.importers import Source
from lorac.trainers.ai_toolkit.import_yaml import FLAG_ARCHS, load_yaml
from tests.conftest import REPO, lorac

EXAMPLES = REPO / "tests" / "fixtures" / "ai-toolkit-examples"
FILES = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.y*ml"))

#: the examples that are no LoRA training job, or no YAML, with the one line lorac answers
REFUSED = {
    "extract.example.yml": "job 'extract' is not a LoRA training job",
    "generate.example.yaml": "job 'generate' is not a LoRA training job",
    "mod_lora_scale.yaml": "job 'mod' is not a LoRA training job",
    "train_slider.example.yml": "job 'train' is not a LoRA training job",
    "train_lora_omnigen2_24gb.yaml": ":65:16: invalid YAML",
}
#: full fine-tunes and adapter training: imported as a LoRA, with a warning
NO_NETWORK = {"train_flex_redux.yaml", "train_full_fine_tune_flex.yaml",
              "train_full_fine_tune_lumina.yaml"}
#: keys ai-toolkit reads as one (toolkit/config_modules.py)
ALIASES = {("network", "rank"): "linear", ("network", "alpha"): "linear_alpha"}
#: dtype spellings ai-toolkit's get_torch_dtype reads as the same (toolkit/train_tools.py)
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float": "fp32",
          "half": "fp16"}


def _arch(model: dict[str, Any]) -> str:
    """The arch ``ModelConfig`` trains ``model`` as (toolkit/config_modules.py:766-821)."""

    arch = model.get("arch")
    if isinstance(arch, str):
        base = arch.split(":", 1)[0]
        return "flux" if base == "flex1" else base
    return next((a for flag, a in FLAG_ARCHS if model.get(flag)), "sd1")


def _norm(section: str, key: str, value: Any) -> Any:
    if key == "caption_ext" and isinstance(value, str) and value and not value.startswith("."):
        return "." + value
    if key == "dtype" and isinstance(value, str):
        return DTYPES.get(value.lower(), value.lower())
    if (section, key) == ("train", "optimizer") and isinstance(value, str):
        return value.lower()
    return value


def in_optimizer_steps(process: dict[str, Any]) -> dict[str, Any]:
    """``process`` with a legacy ``train.gradient_accumulation_steps`` N > 1 (each step one
    batch, the optimizer every N) written as ``gradient_accumulation: N`` (each step N batches
    and one optimizer step): every step count divided by N, rounded up."""

    train = process.get("train") or {}
    n = train.get("gradient_accumulation_steps")
    if not isinstance(n, int) or n <= 1 or "gradient_accumulation" in train:
        return process
    up = lambda v: -(-v // n) if isinstance(v, int) else v  # noqa: E731
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in process.items()}
    del out["train"]["gradient_accumulation_steps"]
    out["train"]["gradient_accumulation"] = n
    out["train"]["steps"] = up(train.get("steps"))
    params = train.get("lr_scheduler_params")
    if isinstance(params, dict) and "num_warmup_steps" in params:
        out["train"]["lr_scheduler_params"] = {**params,
                                               "num_warmup_steps": up(params["num_warmup_steps"])}
    for section, key in (("save", "save_every"), ("sample", "sample_every")):
        if key in (process.get(section) or {}):
            out[section][key] = up(process[section][key])
    return out


def lost(source: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    """Every key of the ``source`` process ai-toolkit would read differently in ``rebuilt``."""

    source = in_optimizer_steps(source)
    keys = load_ai_toolkit_keys()
    sections = load_backend_toml("ai-toolkit/mapping.toml")["sections"]
    out = []

    def compare(section: str, key: str, want: Any, table: dict[str, Any]) -> None:
        got_key = ALIASES.get((section, key), key)
        cls = sections.get(section)
        spec = keys.get(cls, got_key) if cls else None
        if got_key not in table:
            if spec is not None and spec.default_is_literal and \
                    _norm(section, key, spec.default) == _norm(section, key, want):
                return
            out.append(f"{section}.{key} = {want!r}: missing")
        elif _norm(section, key, table[got_key]) != _norm(section, key, want):
            out.append(f"{section}.{key} = {want!r}: came back as {table[got_key]!r}")

    if _arch(source.get("model", {})) != _arch(rebuilt.get("model", {})):
        out.append(f"arch {_arch(source.get('model', {}))}: came back as "
                   f"{_arch(rebuilt.get('model', {}))}")
    for key, value in source.items():
        if key == "datasets":
            got = rebuilt.get("datasets", [])
            if len(got) != len(value):
                out.append(f"{len(value)} datasets came back as {len(got)}")
            for entry, back in zip(value, got, strict=False):
                for k, v in entry.items():
                    compare("datasets", k, v, back)
        elif isinstance(value, dict):
            for k, v in value.items():
                if section_flag(key, k):
                    continue
                compare(key, k, v, rebuilt.get(key, {}))
        elif rebuilt.get(key, "<missing>") != value:
            out.append(f"{key} = {value!r}: came back as {rebuilt.get(key, '<missing>')!r}")
    return out


def section_flag(section: str, key: str) -> bool:
    """``model.arch`` and the ``is_*`` flags: compared as the arch they select."""

    return section == "model" and (key == "arch" or key.startswith("is_"))


def _job(path: Path) -> dict[str, Any]:
    return load_yaml(Source(path, path.name, path.read_text(encoding="utf-8")))


def _round_trip(project: Path, source: Path) -> tuple[int, str, dict[str, Any] | None]:
    code, _, err = lorac("import", str(source), "--output", "profiles/p.toml", "--force")
    if code != 0:
        return code, err, None
    imported = err
    code, _, err = lorac("build", "p", "--backend", "ai-toolkit", "--output", "o")
    assert code == 0, err
    err = imported + err
    rebuilt = yaml.safe_load((project / "o" / "job.yaml").read_text(encoding="utf-8"))
    return code, err, rebuilt


def test_every_example_of_the_pin_is_here() -> None:
    assert len(FILES) == 25
    assert set(REFUSED) < set(FILES)
    assert set(FILES) > NO_NETWORK
    assert (EXAMPLES.parent / "SOURCES.md").read_text().count("train_lora_omnigen2_24gb") == 1


@pytest.mark.parametrize("name", FILES)
def test_example_round_trips(project: Path, name: str) -> None:
    source = EXAMPLES / name
    code, err, rebuilt = _round_trip(project, source)
    if name in REFUSED:
        assert code == 2 and REFUSED[name] in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        return
    assert code == 0 and rebuilt is not None, err
    assert ("the process has no network" in err) == (name in NO_NETWORK)
    job = _job(source)
    assert rebuilt["config"]["name"] == job["config"]["name"]
    assert lost(job["config"]["process"][0], rebuilt["config"]["process"][0]) == []


def test_the_comparison_notices_a_lost_key() -> None:
    source = {"model": {"arch": "qwen_image", "quantize_te": True, "qtype": "qfloat8"},
              "train": {"gradient_accumulation": 2}, "datasets": [{"caption_ext": "txt"}]}
    assert lost(source, {"model": {"arch": "qwen_image", "qtype": "qfloat8"},
                         "train": {"gradient_accumulation": 2},
                         "datasets": [{"caption_ext": ".txt"}]}) == [
        "model.quantize_te = True: missing"]
    assert lost(source, {"model": {"arch": "zimage", "quantize_te": True},
                         "train": {"gradient_accumulation": 3}, "datasets": []}) == [
        "arch qwen_image: came back as zimage",
        "train.gradient_accumulation = 2: came back as 3", "1 datasets came back as 0"]
    # the legacy key counts batches: the same job in optimizer steps, not the same number
    legacy = {"train": {"gradient_accumulation_steps": 4, "steps": 1000}}
    assert lost(legacy, {"train": {"gradient_accumulation": 4, "steps": 250}}) == []
    assert lost(legacy, {"train": {"gradient_accumulation_steps": 4, "steps": 1000}}) == [
        "train.steps = 250: came back as 1000", "train.gradient_accumulation = 4: missing"]


#: ai-toolkit keys with a value of the type their config class reads, to vary the examples
KEYS = {("model", "quantize_te"): st.booleans(), ("model", "low_vram"): st.booleans(),
        ("model", "qtype"): st.sampled_from(["qfloat8", "float8", "uint4"]),
        ("train", "timestep_type"): st.sampled_from(["linear", "sigmoid", "weighted",
                                                      "shift", "lognorm_blend"]),
        ("train", "lr"): st.floats(min_value=1e-7, max_value=1e-2),
        ("train", "steps"): st.integers(min_value=1, max_value=100_000),
        ("train", "gradient_accumulation_steps"): st.integers(min_value=1, max_value=8),
        ("train", "cache_text_embeddings"): st.booleans(),
        ("train", "ema_config"): st.fixed_dictionaries({"use_ema": st.booleans()}),
        ("network", "linear"): st.integers(min_value=1, max_value=256),
        ("network", "conv"): st.integers(min_value=1, max_value=64),
        ("sample", "guidance_scale"): st.floats(min_value=0, max_value=20),
        ("sample", "prompts"): st.lists(st.text("abc [trigger]", min_size=1), max_size=3),
        ("save", "max_step_saves_to_keep"): st.integers(min_value=1, max_value=10),
        ("datasets", "cache_latents_to_disk"): st.booleans(),
        ("datasets", "num_repeats"): st.integers(min_value=1, max_value=20)}
BASES = [f for f in FILES if f not in REFUSED]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(BASES),
       changes=st.lists(st.sampled_from(sorted(KEYS)), unique=True, max_size=6).flatmap(
           lambda ks: st.tuples(*(st.tuples(st.just(k), KEYS[k]) for k in ks))))
def test_varied_examples_round_trip(project: Path, base: str, changes: tuple) -> None:
    job = _job(EXAMPLES / base)
    process = job["config"]["process"][0]
    for (section, key), value in changes:
        if section == "datasets":
            for entry in process["datasets"]:
                entry[key] = value
        else:
            process.setdefault(section, {})[key] = value
            if key == "gradient_accumulation_steps" and value > 1:
                # ai-toolkit refuses both spellings at once (toolkit/config_modules.py:461-463)
                process[section].pop("gradient_accumulation", None)
    path = project / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False), encoding="utf-8")
    code, err, rebuilt = _round_trip(project, path)
    assert code == 0 and rebuilt is not None, err
    assert lost(process, rebuilt["config"]["process"][0]) == []
