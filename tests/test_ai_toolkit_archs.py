"""ai-toolkit's architectures: the generated ``archs.json``, the family → arch table and what
the emitter makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lorac.config.inventory import load_families
from lorac.core.diagnostics import LoracError
from lorac.trainers.ai_toolkit.archs import arch, families_of, family_arch, load_archs
from lorac.trainers.ai_toolkit.emitter import AiToolkitBackend, load_mapping
from tests.conftest import REPO, lorac, resolved

#: The archs ai-toolkit's UI calls the most trained ones (issue list), all class-based.
MOST_TRAINED = ("zimage", "flux2", "flux2_klein_4b", "flux2_klein_9b", "qwen_image",
                "qwen_image_edit_plus", "wan22_14b", "ltx2", "anima", "krea2")


def test_every_arch_of_the_pin_is_there() -> None:
    archs = load_archs()
    kinds = {k: sorted(n for n, a in archs.items() if a.kind == k)
             for k in ("class", "legacy", "alias")}
    assert len(kinds["class"]) == 41
    assert set(kinds["legacy"]) == {"sd1", "sd2", "sd3", "sdxl", "pixart", "pixart_sigma",
                                    "auraflow", "flux", "lumina2", "vega", "ssd"}
    assert kinds["alias"] == ["flex1"] and archs["flex1"].alias_of == "flux"
    assert set(MOST_TRAINED) <= set(kinds["class"])
    for name in kinds["class"]:  # every class-based model is PEFT-format, quantisable, flow
        a = archs[name]
        assert a.peft_alpha_is_rank and a.quantize and a.flowmatch, name
        assert a.at("peft_alpha_is_rank").split(":")[0].endswith(".py")
    assert archs["flux"].peft_alpha_is_rank and archs["flux"].at(
        "peft_alpha_is_rank").startswith("toolkit/lora_special.py:")
    assert not archs["sdxl"].peft_alpha_is_rank and not archs["sdxl"].quantize
    assert archs["auraflow"].flowmatch and not archs["sd1"].flowmatch


def test_unknown_arch_is_an_error_with_the_closest_names() -> None:
    with pytest.raises(LoracError, match=r"did you mean qwen_image\b"):
        arch("qwen_imag")
    with pytest.raises(LoracError, match=r"Stable Diffusion 1\.x path silently"):
        arch("nothing-like-it")
    assert arch("wan21:14b").name == "wan21"  # the UI's :tag suffix is dropped
    assert arch("flex1").name == "flux"


def test_every_family_has_an_arch_of_the_pin() -> None:
    mapping = load_mapping()
    for family in mapping["families"]:
        assert arch(family_arch(family, mapping) or "").name, family
    # every family lorac's kohya backend knows is trained by ai-toolkit too, but HunyuanImage
    # 2.1 (no arch of the pin loads it)
    assert set(load_families()) - {"hunyuan-image"} <= set(mapping["families"])
    assert "hunyuan-image" not in mapping["families"]
    assert families_of("flex1", mapping) == families_of("flux", mapping)
    assert "wan2.2-t2v-a14b" in families_of("wan22_14b", mapping)


def _build(tmp_path: Path, text: str) -> dict:
    res = resolved(tmp_path, text)
    assert res.profile is not None
    art = AiToolkitBackend().emit(res.profile, "yaml")
    proc = yaml.safe_load(art.files["job.yaml"])["config"]["process"][0]
    proc["_diagnostics"] = art.diagnostics
    return proc


@pytest.mark.parametrize(("family", "expected", "scheduler"), [
    ("wan2.2-t2v-a14b", "wan22_14b", "flowmatch"), ("qwen-image", "qwen_image", "flowmatch"),
    ("z-image", "zimage", "flowmatch"), ("sdxl", "sdxl", "ddpm"), ("sd15", "sd1", "ddpm")])
def test_the_family_decides_the_arch(tmp_path: Path, family: str, expected: str,
                                     scheduler: str) -> None:
    proc = _build(tmp_path, f'[profile]\nfamily = "{family}"\n[network]\nnetwork_dim = 8\n')
    assert proc["model"]["arch"] == expected
    assert proc["train"]["noise_scheduler"] == scheduler
    assert proc["sample"]["sampler"] == scheduler


def test_alpha_overwritten_for_every_peft_arch(tmp_path: Path) -> None:
    text = '[profile]\nfamily = "{}"\n[network]\nnetwork_dim = 16\nnetwork_alpha = 8\n'
    peft = _build(tmp_path, text.format("qwen-image"))["_diagnostics"]
    assert [d.code for d in peft] == ["LRC609"]
    assert "qwen_image.py" in peft[0].message and peft[0].line == 5
    assert _build(tmp_path, text.format("sdxl"))["_diagnostics"] == []


def test_a_family_ai_toolkit_does_not_train_is_an_error(tmp_path: Path) -> None:
    res = resolved(tmp_path, "[network]\nnetwork_dim = 8\n")
    assert res.profile is not None
    with pytest.raises(LoracError, match="no \\[profile\\] family"):
        AiToolkitBackend().emit(res.profile, "yaml")


EXAMPLES = sorted(p for p in (REPO / "profiles" / "examples" / "ai-toolkit").glob("*.toml")
                  if p.stem != "common")


def test_the_most_trained_families_have_example_profiles() -> None:
    mapping = load_mapping()
    archs = {family_arch(p.stem, mapping) for p in EXAMPLES}
    assert {"zimage", "flux2", "qwen_image", "wan22_14b", "ltx2", "anima", "krea2"} <= archs


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_profiles_build_clean(project: Path, path: Path) -> None:
    code, _, err = lorac("build", str(path), "--backend", "ai-toolkit", "--output", "o")
    assert code == 0 and "LRC" not in err, err
    proc = yaml.safe_load((project / "o" / "job.yaml").read_text())["config"]["process"][0]
    assert proc["model"]["arch"] == family_arch(path.stem, load_mapping())
    assert proc["network"]["linear"] == proc["network"]["linear_alpha"] == 16
    assert proc["trigger_word"] == "ohwx" and proc["sample"]["seed"] == 42


def test_example_profiles_lint_without_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = lorac("lint", "profiles/examples/ai-toolkit", "--no-dataset")
    assert code == 0, out
    assert " warning" not in out.lower() and "error" not in out.lower(), out
