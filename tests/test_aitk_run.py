"""``lorac run --backend ai-toolkit --synthetic``: the command, its environment, the phases read
from ai-toolkit's output, the LoRA check; with a stand-in for ai-toolkit (tests/stand_in_aitk.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lorac.run.progress import ProgressParser
from lorac.trainers.ai_toolkit.synth import lora_modules
from tests.conftest import REPO, write_files

STAND_IN = REPO / "tests" / "stand_in_aitk.py"

# kohya's single files stay in the profile (for kohya); ai-toolkit never opens them
PROFILE = """[profile]
family = "flux1-dev"
trigger = "ohwx"

[model]
pretrained_model_name_or_path = "models/flux1-dev.safetensors"
clip_l = "models/clip_l.safetensors"
t5xxl = "models/t5xxl.safetensors"
ae = "models/ae.safetensors"

[trainers.ai-toolkit]
pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"

[network]
network_module = "networks.lora_flux"
network_dim = 8
network_alpha = 8

[training]
max_train_steps = 100

[saving]
output_name = "subject"

[sampling]
sample_prompts = "prompts.txt"

[dataset]
resolution = 512
caption_extension = ".txt"

[[dataset.subsets]]
image_dir = "data"
"""


def _synth_set(root: Path, family: str = "flux1-dev", trainer: str = "ai-toolkit") -> Path:
    """A folder marked as lorac's tiny synthetic set (the stand-in reads only the marker)."""
    (root / "stand_ins").mkdir(parents=True)
    marker = {"family": family, "complete": True, "trainer": trainer, "tiny": True,
              "trainer_args": {"pretrained_model_name_or_path": str(root)},
              "pythonpath": [str(root / "stand_ins")]}
    (root / "lorac-synth.json").write_text(json.dumps(marker))
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    from lorac.config.inventory import load_pin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(STAND_IN)!r}\n"
                    f"runpy.run_path({str(STAND_IN)!r}, run_name='__main__')\n")
    fake.chmod(0o755)
    aitk = tmp_path / "ai-toolkit"
    write_files(aitk, {"toolkit/config_modules.py": "", "run.py": "",
                       ".lorac-commit": load_pin("ai-toolkit").commit})
    project = tmp_path / "project"
    write_files(project, {"profiles/p.toml": PROFILE, "prompts.txt": "ohwx, a photo\n",
                          "data/a.png": b"\x89PNG", "data/a.txt": "ohwx",
                          "lorac.toml": 'ignore = ["LRC5"]\n'})
    _synth_set(tmp_path / "synth")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "LORAC_AI_TOOLKIT": str(aitk), "PYTHONPATH": str(REPO), "LORAC_NO_CACHE": "1",
            "PROJECT": str(project), "SYNTH": str(tmp_path / "synth"),
            "FAKE_AITK_ENV": str(tmp_path / "trainer-env.json")}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lorac", "run", "p", "--backend", "ai-toolkit",
                           "--synthetic", "--synth-dir", env["SYNTH"], "--display", "plain",
                           *args], cwd=env["PROJECT"], env=env, capture_output=True, text=True,
                          timeout=120)


def _manifest(env: dict[str, str]) -> tuple[Path, dict]:
    (run,) = sorted((Path(env["PROJECT"]) / "runs").iterdir())
    return run, json.loads((run / "manifest.json").read_text())


def test_synthetic_flux_run_end_to_end(env: dict[str, str]) -> None:
    result = _run(env, "--max-steps", "3")
    assert result.returncode == 0, result.stderr
    run, m = _manifest(env)
    assert m["status"] == "succeeded"
    assert m["command"][1:] == [str(Path(env["LORAC_AI_TOOLKIT"]) / "run.py"),
                                str(run.resolve() / "job.yaml")]
    job = yaml.safe_load((run / "job.yaml").read_text())
    process = job["config"]["process"][0]
    assert process["model"]["name_or_path"] == env["SYNTH"]
    assert process["train"]["steps"] == 3
    assert process["sample"]["neg"] == ""
    # the phases, in ai-toolkit's order, and the training bar named after the job
    assert [p["phase"] for p in m["phases"]] == [
        "startup", "load", "cache_latents", "cache_text_encoder", "prepare", "train", "save"]
    assert m["progress"]["step"] == 3 and m["progress"]["total"] == 3
    assert m["progress"]["loss"] == pytest.approx(0.47)
    # offline, with the set's stand-ins after lorac's own path
    seen = json.loads(Path(env["FAKE_AITK_ENV"]).read_text())
    assert seen["HF_HUB_OFFLINE"] == "1" and seen["TRANSFORMERS_OFFLINE"] == "1"
    assert seen["PYTHONPATH"].split(os.pathsep) == [str(REPO), env["SYNTH"] + "/stand_ins"]
    # the LoRA: the module count of the (tiny) set's transformer, checked
    check = m["lora_check"]
    assert check["expected_modules"] == len(lora_modules("flux1-dev", tiny=True)) == 20
    (entry,) = check["files"]
    assert entry["modules"] == 20 and entry["rank"] == 8 and entry["problems"] == []


def test_a_lora_with_other_modules_fails_the_check(env: dict[str, str]) -> None:
    result = _run({**env, "FAKE_AITK_MODULES": "5"}, "--max-steps", "2")
    assert result.returncode == 1
    _, m = _manifest(env)
    assert m["status"] == "check failed"
    assert m["lora_check"]["problems"] == [
        "output/subject/subject.safetensors has 5 modules; the profile makes 20"]


def test_files_ai_toolkit_never_opens_are_not_preflighted(env: dict[str, str]) -> None:
    """clip_l, t5xxl and ae name kohya's files, which do not exist here: the ai-toolkit build
    leaves them out (LRC608), so pre-flight does not refuse the run over them."""
    result = _run(env, "--max-steps", "1")
    assert result.returncode == 0, result.stderr
    assert "pre-flight" not in result.stderr


def test_a_synthetic_set_of_another_trainer_is_refused(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    other = _synth_set(tmp_path / "kohya-set", trainer="kohya")
    result = _run({**env, "SYNTH": str(other)}, "--max-steps", "1")
    assert result.returncode == 2
    assert f"{other} holds a synthetic flux1-dev set for kohya, not for ai-toolkit" in \
        result.stderr
    assert not (Path(env["PROJECT"]) / "runs").exists() or \
        not list((Path(env["PROJECT"]) / "runs").iterdir())


def test_dry_run_names_the_option_the_set_fills(env: dict[str, str]) -> None:
    result = _run(env, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "override: pretrained_model_name_or_path = <synthetic>" in result.stdout


# ---- ai-toolkit's output ---------------------------------------------------------------------

#: Lines of a real ai-toolkit 27a03a91 run (FLUX.1, tiny synthetic set, CPU), in order.
AITK_LINES = [
    "Running 1 job",
    "Loading Flux model",
    "Loading transformer",
    "Quantizing transformer",
    "create LoRA network. base dim (rank): 64, alpha: 64",
    "Caching latents for data",
    "Caching latents to disk: 100%|##########| 2/2 [00:00<00:00, 1580.37it/s]",
    "Caching text_embeddings for data",
    "Caching embeddings and unloading text encoder",
    "Generating baseline samples before training",
    "Generating Images: 100%|##########| 1/1 [00:37<00:00, 37.85s/it]",
    "flux_final:   0%|          | 0/2 [00:00<?, ?it/s]",
    "flux_final:  50%|#####     | 1/2 [00:06<00:06,  6.21s/it, lr: 1.0e-06 loss: 1.503e+00]",
    "flux_final: 100%|##########| 2/2 [00:08<00:00,  4.18s/it, lr: 2.0e-06 loss: 1.510e+00]",
    "Saved checkpoint to /runs/x/output/flux_final/flux_final.safetensors",
    "Generating Images: 100%|##########| 1/1 [00:32<00:00, 32.50s/it]",
]


def test_parser_reads_ai_toolkit_phases_and_its_training_bar() -> None:
    parser = ProgressParser("ai-toolkit", "flux_final")
    events = parser.feed_all(AITK_LINES)
    assert [e.phase for e in events if e.kind == "phase"] == [
        "load", "cache_latents", "cache_text_encoder", "prepare", "train", "save"]
    steps = [e for e in events if e.kind == "step"]
    assert [(e.step, e.total, e.loss) for e in steps] == [
        (0, 2, None), (1, 2, 1.503), (2, 2, 1.51)]
    assert parser.sec_per_it == pytest.approx(4.18)
    # the other bars are caching and sampling bars, not steps
    assert [e.phase for e in events if e.kind == "bar"] == ["cache_latents", "prepare", "save"]


def test_kohya_parser_does_not_take_ai_toolkit_bars_for_steps() -> None:
    parser = ProgressParser()
    assert not [e for e in parser.feed_all(AITK_LINES) if e.kind == "step"]


def test_lora_module_counts() -> None:
    """19 double blocks × 14 Linear layers + 38 single blocks × 6 (FLUX.1); 30 blocks × 10
    (Wan 2.1 1.3B, as musubi-tuner's 300); checked against the classes in
    tests/trainer/test_aitk_synth_trainer.py."""
    assert len(lora_modules("flux1-dev")) == 19 * 14 + 38 * 6 == 494
    assert len(lora_modules("wan2.1-t2v-1.3b")) == 300
    assert len(set(lora_modules("flux1-dev"))) == 494


def test_synth_without_diffusers_is_a_clear_error(tmp_path: Path) -> None:
    """``lorac synth --backend ai-toolkit`` needs diffusers; without it, one line, exit 2, and
    the folder it claimed holds no marker of a complete set."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "diffusers.py").write_text("raise ImportError('hidden')\n")
    (hide / "sitecustomize.py").write_text(
        "import importlib.util, sys\n_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'diffusers' "
        "else _find(name, *a)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(REPO)])}
    result = subprocess.run([sys.executable, "-m", "lorac", "synth", "flux1-dev",
                             str(tmp_path / "set"), "--backend", "ai-toolkit", "--tiny",
                             "--device", "cpu"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "missing here: diffusers" in result.stderr
    marker = tmp_path / "set" / "lorac-synth.json"
    assert not marker.exists() or json.loads(marker.read_text())["complete"] is False
