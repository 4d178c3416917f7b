"""``lorac inspect`` and :mod:`lorac.scan.lora`: small LoRA files written here with
``safetensors`` in each trainer's key format (no model weights), read back header first."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from lorac.core.diagnostics import LoracError
from lorac.scan import lora
from tests.conftest import write_files

RNG = np.random.default_rng(0)


def _pair(down: str, up: str, r: int, n_in: int = 8, n_out: int = 8, *, dtype: str = "float32",
          zero_up: bool = False) -> dict[str, np.ndarray]:
    return {down: RNG.normal(size=(r, n_in)).astype(dtype),
            up: (np.zeros((n_out, r)) if zero_up else RNG.normal(size=(n_out, r))).astype(dtype)}


def kohya(path: Path, prefixes: list[str], rank: int = 4, alpha: float = 1.0,
          meta: dict[str, str] | None = None, *, zero_up: bool = False,
          dtype: str = "float32") -> Path:
    tensors: dict[str, np.ndarray] = {}
    for p in prefixes:
        tensors |= _pair(f"{p}.lora_down.weight", f"{p}.lora_up.weight", rank, dtype=dtype,
                         zero_up=zero_up)
        tensors[f"{p}.alpha"] = np.array(alpha, dtype=dtype)
    save_file(tensors, str(path), metadata=meta)
    return path


SDXL_META = {
    "ss_network_module": "networks.lora", "ss_network_dim": "16", "ss_network_alpha": "1.0",
    "ss_network_args": json.dumps({"conv_dim": "4"}), "ss_learning_rate": "0.0001",
    "ss_resolution": "(1024, 1024)", "ss_base_model_version": "sdxl_base_v1-0",
    "ss_dataset_dirs": json.dumps({"10_ohwx": {"n_repeats": 10, "img_count": 20}}),
    "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit", "ss_seed": "42",
}
SDXL_KEYS = ["lora_unet_input_blocks_4_1_proj_in", "lora_unet_output_blocks_2_0_conv",
             "lora_te1_text_model_encoder_layers_0_mlp_fc1",
             "lora_te2_text_model_encoder_layers_3_self_attn_q_proj"]


def test_kohya_sdxl_reads_rank_alpha_blocks_and_settings(tmp_path: Path) -> None:
    found = lora.inspect_file(kohya(tmp_path / "a.safetensors", SDXL_KEYS, 16, 1.0, SDXL_META))
    assert (found.key_format, found.trainer) == ("kohya", "kohya sd-scripts")
    assert found.network_module == "networks.lora"
    assert (found.rank, found.alpha, len(found.modules)) == (16, 1.0, 4)
    assert found.family == "sdxl" and found.base_model == "sdxl_base_v1-0"
    assert found.components == {"te1": 1, "te2": 1, "unet": 2}
    assert "unet.input_blocks_4" in found.blocks and "te2.text_model_encoder_layers_3" in \
        found.blocks
    assert found.settings["ss_network_args"] == {"conv_dim": "4"}
    assert found.settings["ss_dataset_dirs"]["10_ohwx"]["n_repeats"] == 10
    assert found.health is not None and not found.health.nonfinite
    assert not found.health.never_trained and found.health.up_modules == 4
    assert all(v > 0 for v in found.health.block_norms.values())


def test_flux_keys_without_metadata_give_family_from_blocks(tmp_path: Path) -> None:
    path = kohya(tmp_path / "f.safetensors", ["lora_unet_double_blocks_0_img_attn_qkv",
                                              "lora_unet_single_blocks_3_linear1"], 8, 8.0,
                 dtype="float16")
    found = lora.inspect_file(path)
    assert found.family == "flux1-dev" and found.base_model is None
    assert found.trainer == "kohya-format (trainer not recorded)"
    assert list(found.blocks) == ["unet.double_blocks_0", "unet.single_blocks_3"]
    assert (found.rank, found.alpha) == (8, 8.0)


def test_ranks_and_alphas_per_module_when_they_differ(tmp_path: Path) -> None:
    tensors = {}
    for name, r, a in (("lora_unet_a_blocks_0_x", 4, 4.0), ("lora_unet_a_blocks_1_x", 8, 1.0)):
        tensors |= _pair(f"{name}.lora_down.weight", f"{name}.lora_up.weight", r)
        tensors[f"{name}.alpha"] = np.array(a, dtype="float32")
    save_file(tensors, str(tmp_path / "m.safetensors"))
    found = lora.inspect_file(tmp_path / "m.safetensors")
    assert found.rank is None and found.ranks == {4: 1, 8: 1}
    assert found.alphas == {1.0: 1, 4.0: 1}
    assert [(m["rank"], m["alpha"]) for m in found.to_json()["per_module"]] == [(4, 4.0),
                                                                                 (8, 1.0)]


def test_lycoris_loha_and_lokr(tmp_path: Path) -> None:
    p = "lora_unet_down_blocks_0_attentions_0_proj_in"
    loha = {f"{p}.hada_w1_a": RNG.normal(size=(8, 6)).astype("float32"),
            f"{p}.hada_w1_b": RNG.normal(size=(6, 8)).astype("float32"),
            f"{p}.hada_w2_a": RNG.normal(size=(8, 6)).astype("float32"),
            f"{p}.hada_w2_b": RNG.normal(size=(6, 8)).astype("float32"),
            f"{p}.alpha": np.array(3.0, dtype="float32")}
    save_file(loha, str(tmp_path / "loha.safetensors"),
              metadata={"ss_network_module": "lycoris.kohya",
                        "ss_network_args": json.dumps({"algo": "loha"})})
    found = lora.inspect_file(tmp_path / "loha.safetensors")
    assert found.key_format == "LyCORIS" and found.kinds == ["loha"]
    assert (found.rank, found.alpha, found.network_module) == (6, 3.0, "lycoris.kohya")
    lokr = {f"{p}.lokr_w1": RNG.normal(size=(2, 2)).astype("float32"),
            f"{p}.lokr_w2_a": RNG.normal(size=(4, 5)).astype("float32"),
            f"{p}.lokr_w2_b": RNG.normal(size=(5, 4)).astype("float32"),
            f"{p}.alpha": np.array(5.0, dtype="float32")}
    save_file(lokr, str(tmp_path / "lokr.safetensors"))
    found = lora.inspect_file(tmp_path / "lokr.safetensors")
    assert found.key_format == "LyCORIS" and found.kinds == ["lokr"]
    assert (found.rank, found.alpha) == (5, 5.0)


def test_musubi_tuner_dit_keys(tmp_path: Path) -> None:
    path = kohya(tmp_path / "w.safetensors", ["lora_unet_blocks_0_self_attn_q",
                                              "lora_unet_blocks_1_cross_attn_k"], 32, 16.0,
                 {"ss_network_module": "networks.lora_wan", "ss_network_dim": "32",
                  "ss_network_alpha": "16", "ss_architecture": "wan2.1"}, dtype="float16")
    found = lora.inspect_file(path)
    assert found.trainer == "musubi-tuner" and found.key_format == "kohya (DiT keys)"
    assert (found.rank, found.alpha) == (32, 16.0)
    assert list(found.blocks) == ["unet.blocks_0", "unet.blocks_1"]


def test_ai_toolkit_peft_keys(tmp_path: Path) -> None:
    tensors = {}
    for p in ("transformer.transformer_blocks.0.attn.to_q",
              "transformer.single_transformer_blocks.2.proj_out"):
        tensors |= _pair(f"{p}.lora_A.weight", f"{p}.lora_B.weight", 16)
    save_file(tensors, str(tmp_path / "t.safetensors"), metadata={
        "software": json.dumps({"name": "ai-toolkit", "version": "0.1"}),
        "format": "pt"})
    found = lora.inspect_file(tmp_path / "t.safetensors")
    assert (found.key_format, found.trainer) == ("diffusers-PEFT", "ai-toolkit")
    assert found.rank == 16 and found.alpha is None and found.family == "flux1-dev"
    assert found.components == {"transformer": 2}
    assert list(found.blocks) == ["transformer.single_transformer_blocks_2",
                                  "transformer.transformer_blocks_0"]


def test_health_finds_nan_and_a_lora_that_never_trained(tmp_path: Path) -> None:
    path = kohya(tmp_path / "z.safetensors", SDXL_KEYS[:2], 4, 4.0, zero_up=True,
                 dtype="bfloat16" if hasattr(np, "bfloat16") else "float16")
    health = lora.inspect_file(path).health
    assert health is not None and health.never_trained and len(health.zero_up) == 2
    tensors = _pair("lora_unet_x_blocks_0_q.lora_down.weight",
                    "lora_unet_x_blocks_0_q.lora_up.weight", 4)
    tensors["lora_unet_x_blocks_0_q.lora_up.weight"][1, 2] = np.nan
    save_file(tensors, str(tmp_path / "n.safetensors"))
    health = lora.inspect_file(tmp_path / "n.safetensors").health
    assert health is not None and health.nonfinite == ["lora_unet_x_blocks_0_q.lora_up.weight"]


def _raw_file(path: Path, header: dict, data: bytes = b"", size: int | None = None) -> Path:
    text = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + data)
        if size is not None:
            fh.truncate(size)
    return path


def test_bf16_is_decoded_for_health(tmp_path: Path) -> None:
    # 1.0 and NaN in bfloat16, written by hand (numpy has no bfloat16)
    up = struct.pack("<4H", 0x3F80, 0, 0x7FC0, 0)
    down = struct.pack("<4H", 0x3F80, 0x3F80, 0x3F80, 0x3F80)
    header = {"m.lora_down.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
              "m.lora_up.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [8, 16]},
              "m.alpha": {"dtype": "BF16", "shape": [], "data_offsets": [16, 18]}}
    found = lora.inspect_file(_raw_file(tmp_path / "b.safetensors", header,
                                        down + up + struct.pack("<H", 0x4000)))
    assert found.alpha == 2.0 and found.rank == 2
    assert found.health is not None and found.health.nonfinite == ["m.lora_up.weight"]


def test_huge_sparse_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    gib = 1024 ** 3
    n = 5 * gib // 2  # 5 GiB of F16 per tensor, 20 GiB in all
    header = {}
    for i in range(4):
        role = "lora_down" if i % 2 == 0 else "lora_up"
        header[f"lora_unet_b_blocks_{i // 2}_q.{role}.weight"] = {
            "dtype": "F16", "shape": [n // 32768, 32768],
            "data_offsets": [i * n * 2, (i + 1) * n * 2]}
    path = tmp_path / "big.safetensors"
    _raw_file(path, header)
    start = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(start + 4 * n * 2)
        fh.seek(start + 4 * n * 2 - 2)
        fh.write(struct.pack("<e", 1.0))  # the last element of the last up-weight
    assert os.path.getsize(path) > 20 * gib
    tracemalloc.start()
    found = lora.inspect_file(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    assert found.rank == n // 32768
    assert found.health is not None and found.health.zero_up == ["lora_unet_b_blocks_0_q"]
    assert found.health.block_norms["unet.b_blocks_1"] == 1.0


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "shorter than the 8-byte header length"),
    (struct.pack("<Q", 1 << 40), "exceeds"),
    (struct.pack("<Q", 500) + b"{}", "truncated"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not valid JSON"),
    (struct.pack("<Q", 2) + b"[]", "not valid JSON"),
    (struct.pack("<Q", 2) + b"{}", "unknown format"),
])
def test_bad_files_give_one_line_reasons(tmp_path: Path, content: bytes, reason: str) -> None:
    write_files(tmp_path, {"x.safetensors": content})
    with pytest.raises(LoracError, match=reason) as err:
        lora.inspect_file(tmp_path / "x.safetensors")
    assert "\n" not in err.value.message


def test_header_claiming_more_data_than_the_file_holds(tmp_path: Path) -> None:
    header = {"a.lora_down.weight": {"dtype": "F32", "shape": [1 << 30, 5],
                                     "data_offsets": [0, 20 << 30]}}
    with pytest.raises(LoracError, match="truncated: tensor"):
        lora.read_header(_raw_file(tmp_path / "t.safetensors", header))
    header = {"a.lora_down.weight": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}
    with pytest.raises(LoracError, match="8 bytes for shape"):
        lora.read_header(_raw_file(tmp_path / "s.safetensors", header, b"\0" * 8))


# --------------------------------------------------------------------------- the command


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from lorac.cli import run

    code = run(args)
    out, err = capsys.readouterr()
    return code, out, err


PROFILE = """[profile]
family = "sdxl"

[network]
network_module = "networks.lora"
network_dim = 16
network_alpha = 32

[optimizer]
learning_rate = 1e-4
optimizer_type = "AdamW8bit"

[dataset]
resolution = 768
"""


def test_inspect_text_json_and_profile_findings(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    write_files(project, {"profiles/p.toml": PROFILE})
    kohya(project / "a.safetensors", SDXL_KEYS, 16, 1.0, SDXL_META)
    code, out, _ = _cli(["inspect", "a.safetensors"], capsys)
    assert code == 0
    assert "rank:        16" in out and "alpha:       1" in out and "ss_learning_rate" in out
    assert "health:      ok" in out
    code, out, _ = _cli(["inspect", "a.safetensors", "--profile", "p", "-f", "json"], capsys)
    assert code == 1
    body = json.loads(out)
    assert (body["rank"], body["alpha"], body["trainer"]) == (16, 1, "kohya sd-scripts")
    found = {d["key_path"][-1]: d for d in body["findings"]}
    assert set(found) == {"network_alpha", "resolution"}
    assert found["network_alpha"]["code"] == "LRC307"
    assert found["network_alpha"]["line"] == 7 and found["network_alpha"]["col"] == 1
    assert "alpha = 32 but the saved LoRA a.safetensors has 1" in \
        found["network_alpha"]["message"]
    code, out, _ = _cli(["inspect", "a.safetensors", "--profile", "p"], capsys)
    assert code == 1 and "profiles/p.toml:7:1: LRC307" in out.replace(os.sep, "/")


def test_inspect_takes_the_runs_own_overrides_as_notes(project: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """A LoRA saved by ``lorac run --max-steps 40`` records 40 steps: against its profile's
    3000 that is the run's override, not a contradiction; the alpha still is one."""

    write_files(project, {"profiles/p.toml": PROFILE.replace(
        "[dataset]", "[training]\nmax_train_steps = 3000\n\n[dataset]")})
    run = project / "runs" / "p-1"
    (run / "output").mkdir(parents=True)
    meta = {**SDXL_META, "ss_max_train_steps": "40", "ss_resolution": "(768, 768)"}
    kohya(run / "output" / "a.safetensors", SDXL_KEYS, 16, 1.0, meta)
    code, out, _ = _cli(["inspect", "runs/p-1/output/a.safetensors", "-p", "p", "-f", "json"],
                        capsys)
    keys = {d["key_path"][-1] for d in json.loads(out)["findings"]}
    assert code == 1 and "max_train_steps" in keys and "network_alpha" in keys
    write_files(project, {"runs/p-1/manifest.json": json.dumps(
        {"profile": {"overrides": {"max_train_steps": "40", "output_dir": str(run / "output")}}})})
    code, out, _ = _cli(["inspect", "runs/p-1/output/a.safetensors", "-p", "p", "-f", "json"],
                        capsys)
    body = json.loads(out)
    assert code == 1 and {d["key_path"][-1] for d in body["findings"]} == keys - {
        "max_train_steps"}
    assert body["run_overrides"]["notes"] == [
        "max_train_steps = 40: set by the run, not the profile"]
    code, out, _ = _cli(["inspect", "runs/p-1/output/a.safetensors", "-p", "p"], capsys)
    assert "the run overrode" in out and "max_train_steps = 40: set by the run" in out


def test_inspect_never_trained_exits_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kohya(project / "z.safetensors", SDXL_KEYS, 4, 4.0, zero_up=True)
    code, out, _ = _cli(["inspect", "z.safetensors"], capsys)
    assert code == 1 and "this LoRA never trained" in out


def test_inspect_unreadable_is_one_line_exit_2(project: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_files(project, {"x.safetensors": b"\x10\0\0\0\0\0\0\0{\"a\": 1"})
    code, out, err = _cli(["inspect", "x.safetensors"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "truncated" in err and "Traceback" not in err
    code, _, err = _cli(["inspect", "missing.safetensors"], capsys)
    assert code == 2 and "cannot read" in err


def test_lint_finds_the_alpha_a_saved_lora_contradicts(project: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    write_files(project, {"profiles/p.toml": PROFILE.replace(
        "[optimizer]", '[saving]\noutput_name = "identity"\n\n[optimizer]')})
    meta = {**SDXL_META, "ss_output_name": "identity"}
    (project / "output").mkdir()
    kohya(project / "output" / "identity-000004.safetensors", SDXL_KEYS, 16, 1.0, meta)
    (project / "output" / "vae.safetensors").write_bytes(b"not a lora")
    code, out, _ = _cli(["lint", ".", "--select", "LRC307"], capsys)
    assert code == 0  # warnings
    lines = [line for line in out.splitlines() if "LRC307" in line]
    assert len(lines) == 2, out
    assert any("network_alpha = 32 but the saved LoRA output/identity-000004.safetensors has 1"
               in line for line in lines)


def test_lint_finds_the_audits_alpha_from_the_saved_file(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The audited guide says Rank/Alpha 32/32 for train_flux_fast.sh; the LoRA that script
    saved (its output_name is flux_fast_<date>) has alpha 1: a finding at the guide's line."""
    import shutil

    from tests.conftest import REPO
    from tests.make_lora import write

    repo = tmp_path / "repo"
    shutil.copytree(REPO / "tests" / "fixtures" / "audit_repo", repo)
    write(repo / "output" / "flux_fast_20250101_120000.safetensors", rank=32, alpha=1.0)
    monkeypatch.chdir(repo)
    code, out, _ = _cli(["lint", ".", "--select", "LRC307"], capsys)
    lines = [line for line in out.splitlines() if "LRC307" in line]
    assert lines == ["docs/TRAINING_GUIDE.md:98:16: LRC307 docs say network_alpha = 32 but the "
                     "saved LoRA output/flux_fast_20250101_120000.safetensors of "
                     "scripts/train_flux_fast.sh has 1 (the tensors' alpha) "
                     "[lora-file-contradicts]"], out
    assert code == 0  # a warning
    # the same file with alpha 32 agrees with the guide: nothing
    write(repo / "output" / "flux_fast_20250101_120000.safetensors", rank=32, alpha=32.0)
    code, out, _ = _cli(["lint", ".", "--select", "LRC307"], capsys)
    assert code == 0 and "LRC307" not in out


def test_without_seek_data_every_byte_is_read(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that refuses SEEK_DATA (EINVAL) gets the whole tensor read, not taken
    for a hole."""
    import errno

    path = kohya(tmp_path / "a.safetensors", SDXL_KEYS[:1], 4, 4.0)
    real = os.lseek

    def refuse(fd: int, pos: int, how: int) -> int:
        if how in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, "not supported")
        return real(fd, pos, how)

    monkeypatch.setattr(os, "lseek", refuse)
    health = lora.inspect_file(path).health
    assert health is not None and health.zero_up == [] and health.up_modules == 1
    assert health.block_norms["unet.input_blocks_4"] > 0


def test_lycoris_own_keys_without_metadata(tmp_path: Path) -> None:
    # create_lycoris + save_weights(file, dtype, None): "lycoris_" keys, LoCon in lora_* names
    path = kohya(tmp_path / "l.safetensors", ["lycoris_blocks_0_to_q", "lycoris_blocks_1_to_q"],
                 8, 4.0)
    found = lora.inspect_file(path)
    assert (found.key_format, found.trainer) == ("LyCORIS", "LyCORIS")
    assert (found.network_module, found.rank, found.alpha) == ("lycoris (LoCon)", 8, 4.0)
    assert found.components == {"model": 2}


def test_full_matrix_lokr_modules_have_no_rank(tmp_path: Path) -> None:
    # LyCORIS keeps lokr_w2 whole when its dim is at least half the factor: alpha = dim there
    tensors = {"lora_unet_a.lokr_w1": RNG.normal(size=(4, 4)).astype("float32"),
               "lora_unet_a.lokr_w2": RNG.normal(size=(16, 16)).astype("float32"),
               "lora_unet_a.alpha": np.array(8.0, dtype="float32"),
               "lora_unet_b.lokr_w1": RNG.normal(size=(4, 4)).astype("float32"),
               "lora_unet_b.lokr_w2_a": RNG.normal(size=(32, 8)).astype("float32"),
               "lora_unet_b.lokr_w2_b": RNG.normal(size=(8, 32)).astype("float32"),
               "lora_unet_b.alpha": np.array(8.0, dtype="float32")}
    save_file(tensors, str(tmp_path / "k.safetensors"))
    found = lora.inspect_file(tmp_path / "k.safetensors")
    assert found.ranks == {8: 1} and found.full_matrix == 1
    assert found.rank is None  # one module has no rank: no rank for the file
    assert [m["rank"] for m in found.to_json()["per_module"]] == [None, 8]


def test_peft_keys_apply_alpha_rank(tmp_path: Path) -> None:
    tensors = _pair("transformer.blocks.0.attn1.to_q.lora_A.weight",
                    "transformer.blocks.0.attn1.to_q.lora_B.weight", 16)
    save_file(tensors, str(tmp_path / "p.safetensors"))
    found = lora.inspect_file(tmp_path / "p.safetensors")
    assert (found.alpha, found.effective_alpha) == (None, 16.0)
    assert found.to_json()["effective_alpha"] == 16.0
    alpha = kohya(tmp_path / "k.safetensors", ["lora_unet_a"], 16, 4.0)
    assert lora.inspect_file(alpha).effective_alpha == 4.0


@pytest.mark.parametrize(("module", "base"), [("networks.lora_zimage", None),
                                              ("networks.lora_flux_2", None),
                                              ("networks.lora", "qwen_image")])
def test_musubi_tuner_from_its_modules_and_architectures(tmp_path: Path, module: str,
                                                         base: str | None) -> None:
    meta = {"ss_network_module": module, "ss_network_dim": "4", "ss_network_alpha": "1"}
    if base:  # trainer_base.py writes the architecture's full name
        meta["ss_base_model_version"] = base
    found = lora.inspect_file(kohya(tmp_path / "m.safetensors", ["lora_unet_layers_0_attn"],
                                    4, 1.0, meta))
    assert found.trainer == "musubi-tuner"
    plain = kohya(tmp_path / "s.safetensors", ["lora_unet_layers_0_attn"], 4, 1.0,
                  {"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base"})
    assert lora.inspect_file(plain).trainer == "kohya sd-scripts"
