"""`lorac import` through click: output, exit codes, and import(build(P)) identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorac.cli import run
from lorac.config.profile import resolve
from lorac.trainers.kohya import emitter as kohya

FIXTURES = Path(__file__).parent / "fixtures" / "import"
AUDIT = FIXTURES / "audit"


class _Result:
    def __init__(self, code: int, err: str) -> None:
        self.exit_code, self.stderr = code, err


@pytest.fixture
def _run(capsys: pytest.CaptureFixture):
    def call(*args: str) -> _Result:
        code = run(["import", *args])
        return _Result(code, capsys.readouterr().err)

    return call


def test_writes_profile_and_refuses_to_overwrite(project: Path, _run) -> None:
    script = str(AUDIT / "scripts" / "train_flux_fast.sh")
    env = str(AUDIT / "docker" / "env.sh")
    result = _run(script, "--env", env, "--name", "fast")
    assert result.exit_code == 0, result.stderr
    written = project / "profiles" / "fast.toml"
    assert written.read_text().startswith("#:schema ../lorac/schema/profile.schema.json\n")
    assert "LRC095" in result.stderr and "wrote profiles/fast.toml" in result.stderr
    again = _run(script, "--env", env, "--name", "fast")
    assert again.exit_code == 2 and "pass --force" in again.stderr
    assert _run(script, "--env", env, "--name", "fast", "--force").exit_code == 0
    other = project / "elsewhere.toml"
    assert _run(script, "--env", env, "-o", str(other)).exit_code == 0
    assert not other.read_text().startswith("#:schema")


def test_strict_fails_on_unmapped(project: Path, _run) -> None:
    result = _run(str(FIXTURES / "kohya_config.toml"), "--strict")
    assert result.exit_code == 1
    assert "LRC093" in result.stderr
    assert (project / "profiles" / "kohya_config.toml").exists()


def test_bad_input_is_one_line_exit_2(project: Path, _run) -> None:
    (project / "bad.json").write_text('{"a": NaN}')
    result = _run("bad.json")
    assert result.exit_code == 2
    assert result.stderr == ("lorac: error: bad.json: invalid JSON: NaN is not a number JSON "
                             "allows\n")
    assert _run("missing.sh").exit_code == 2
    assert _run(str(FIXTURES / "kohya_config.toml"), "--family", "sd9").exit_code == 2


# --------------------------------------------------------------------------- identity

_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF,
                              blacklist_characters="\x7f"), min_size=1, max_size=12)
_profile = st.fixed_dictionaries({
    "network_dim": st.integers(1, 256),
    "network_alpha": st.floats(0.5, 256, allow_nan=False).map(lambda f: round(f, 3)),
    "learning_rate": st.floats(1e-7, 1e-2, allow_nan=False),
    "max_train_steps": st.integers(1, 100_000),
    "gradient_checkpointing": st.booleans(),
    "optimizer_type": st.sampled_from(["AdamW8bit", "Prodigy", "Adafactor"]),
    "output_name": _text,
    "optimizer_args": st.lists(_text.filter(lambda s: not s.startswith("-")), max_size=3),
    "resolution": st.integers(256, 2048),
    "image_dir": _text,
    "num_repeats": st.integers(1, 50),
})


def _write_profile(folder: Path, p: dict) -> Path:
    from lorac.config.values import toml_value

    lines = ['[profile]', 'family = "flux1-dev"', '[network]',
             'network_module = "networks.lora_flux"',
             f"network_dim = {p['network_dim']}", f"network_alpha = {p['network_alpha']!r}",
             "[optimizer]", f"learning_rate = {p['learning_rate']!r}",
             f"optimizer_type = {toml_value(p['optimizer_type'])}"]
    if p["optimizer_args"]:
        lines.append(f"optimizer_args = {toml_value(p['optimizer_args'])}")
    lines += ["[training]", f"max_train_steps = {p['max_train_steps']}"]
    if p["gradient_checkpointing"]:
        lines.append("gradient_checkpointing = true")
    lines += ["[saving]", f"output_name = {toml_value(p['output_name'])}", "[dataset]",
              f"resolution = {p['resolution']}", "[[dataset.subsets]]",
              f"image_dir = {toml_value(p['image_dir'])}", f"num_repeats = {p['num_repeats']}"]
    path = folder / "profiles" / "p.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _plain(profile) -> dict:
    return {k: v for k, (v, _) in profile.options().items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_profile, st.sampled_from(["toml", "cli"]))
def test_import_of_build_is_identity(tmp_path_factory, p: dict, fmt: str) -> None:
    from lorac.importers import Settings, read, read_source, render

    folder = tmp_path_factory.mktemp("identity")
    original = resolve(_write_profile(folder, p), env={}).profile
    assert original is not None
    artifacts = kohya.KohyaBackend().emit(original, fmt)
    build = folder / "build"
    build.mkdir()
    for name, text in artifacts.files.items():
        (build / name).write_text(text, encoding="utf-8")
    entry = build / ("config.toml" if fmt == "toml" else "train.sh")
    kind = "kohya-toml" if fmt == "toml" else "shell"
    draft = read(read_source(entry), kind,
                 Settings(family="flux1-dev", dataset_config=build / "dataset.toml"))
    out = folder / "profiles" / "back.toml"
    out.write_text(render(draft, schema_header=True), encoding="utf-8")
    back = resolve(out, env={}).profile
    assert back is not None
    assert _plain(back) == _plain(original)
    assert back.get("dataset") == original.get("dataset")


def test_from_choices_are_the_importers_kinds() -> None:
    # typed out in the command so that `lorac lint` does not import lorac.importers
    from lorac.cli.importing import import_cmd
    from lorac.importers import KINDS

    [option] = [p for p in import_cmd.params if p.name == "kind"]
    assert tuple(option.type.choices) == KINDS
