"""The bad-input corpus: every reader, fed broken, hostile or huge input, answers with a
diagnostic or a one-line error, never a traceback, a hang or a half-written output.

``tests/corpus/bad/cases.toml`` lists the cases (``[[case]]``): ``name``; ``command`` (lorac's
arguments, run in a temporary copy of ``tests/corpus/bad/<name>/``, or of ``files``' folder
when given); ``exit`` (the expected exit code); ``fragment`` (text the output must contain);
optionally ``generate`` (a generator below that writes inputs too big, too binary or too
strange to commit: 10 MB values, 10,000-level nesting, BOMs, UTF-16, symlink loops, a PNG
header claiming 50,000×50,000 pixels), ``output`` (a path that must not exist afterwards) and
``absent`` (texts — planted credentials, a forged line — that neither the output nor any file
the command wrote may contain).

Each case runs in a forked child (the parent has already imported lorac), so a crash is seen
as a crash, a hang is killed after :data:`TIMEOUT` seconds, and no state leaks between cases.
After a failing ``build``, ``import``, ``run`` or ``synth`` the folder must hold exactly what it
held before, byte for byte: no output, no staging folder, no temporary file, nothing removed
or changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import tomllib

from tests.conftest import file_modes_bind, write_files

CORPUS = Path(__file__).resolve().parent / "corpus" / "bad"
TIMEOUT = 5.0
MB = 1024 * 1024

PROFILE = ('[profile]\nfamily = "flux1-dev"\n\n[network]\nnetwork_module = "networks.lora_flux"\n'
           'network_dim = 16\nnetwork_alpha = 16\n')


# --------------------------------------------------------------------------- generators


def _write(root: Path, name: str, data: str | bytes) -> Path:
    write_files(root, {name: data})
    return root / name


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, body: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + body


def _dataset_profile(root: Path, image_dir: str = "data") -> None:
    _write(root, "profiles/p.toml", PROFILE + '\n[dataset]\nresolution = 1024\n'
           f'caption_extension = ".txt"\n\n[[dataset.subsets]]\nimage_dir = "{image_dir}"\n')


def gen_profile_deep_arrays(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE + "x = " + "[" * 10_000 + "]" * 10_000 + "\n")


def gen_profile_deep_tables(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE + "x = " + "{a = " * 10_000 + "1" + "}" * 10_000
           + "\n")


def gen_profile_deep_dotted(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE + "[" + ".".join(["a"] * 10_000) + "]\nb = 1\n")


def gen_profile_10mb_value(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE + 'output_name = "' + "x" * (10 * MB) + '"\n')


def gen_profile_halfmb_value(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE + '[saving]\noutput_name = "' + "x" * (MB // 2)
           + '"\n')


def gen_profile_many_keys(root: Path) -> None:
    body = "".join(f"k{i} = {i}\n" for i in range(5_000))
    _write(root, "profiles/p.toml", PROFILE + "[junk]\n" + body)


def gen_profile_binary(root: Path) -> None:
    _write(root, "profiles/p.toml", bytes(range(256)) * 64)


def gen_profile_random_bytes(root: Path) -> None:
    import random

    rng = random.Random(1234)
    _write(root, "profiles/p.toml", bytes(rng.randrange(1, 256) for _ in range(4096)))


def gen_profile_bom(root: Path) -> None:
    _write(root, "profiles/p.toml", b"\xef\xbb\xbf" + PROFILE.encode())


def gen_profile_utf16(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE.encode("utf-16"))


def gen_profile_utf16_nobom(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE.encode("utf-16-le"))


def gen_profile_latin1(root: Path) -> None:
    _write(root, "profiles/p.toml", (PROFILE + '[saving]\noutput_name = "café"\n').encode(
        "latin-1"))


def gen_profile_lone_surrogate(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE.encode() + b'[saving]\noutput_name = "\xed\xa0\x80"\n')


def gen_profile_fifo(root: Path) -> None:
    (root / "profiles").mkdir()
    os.mkfifo(root / "profiles" / "p.toml")


def gen_profile_directory(root: Path) -> None:
    (root / "profiles" / "p.toml").mkdir(parents=True)
    _write(root, "profiles/q.toml", PROFILE)


def gen_profile_unreadable(root: Path) -> None:
    path = _write(root, "profiles/p.toml", PROFILE)
    path.chmod(0)


def gen_profile_dangling_symlink(root: Path) -> None:
    (root / "profiles").mkdir()
    os.symlink("nowhere.toml", root / "profiles" / "p.toml")


def gen_profile_self_symlink(root: Path) -> None:
    (root / "profiles").mkdir()
    os.symlink("p.toml", root / "profiles" / "p.toml")


def gen_profile_symlink_pair(root: Path) -> None:
    (root / "profiles").mkdir()
    os.symlink("b.toml", root / "profiles" / "a.toml")
    os.symlink("a.toml", root / "profiles" / "b.toml")


def gen_profile_extends_self_symlink(root: Path) -> None:
    _write(root, "profiles/p.toml", '[profile]\nextends = "q"\nfamily = "flux1-dev"\n')
    os.symlink("p.toml", root / "profiles" / "q.toml")


def gen_profile_extends_parent_symlink(root: Path) -> None:
    _write(root, "profiles/p.toml", '[profile]\nextends = "up/p"\nfamily = "flux1-dev"\n')
    os.symlink(".", root / "profiles" / "up")


def gen_profile_extends_symlink_outside(root: Path) -> None:
    _write(root, "outside/base.toml", PROFILE)
    _write(root, "profiles/p.toml", '[profile]\nextends = "base"\n')
    os.symlink("../outside/base.toml", root / "profiles" / "base.toml")


def gen_profiles_dir_loop(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    os.symlink("..", root / "profiles" / "loop")
    os.symlink(".", root / "profiles" / "self")


def gen_profile_crlf_bare_cr(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE.replace("\n", "\r").encode())


def gen_kohya_10mb(root: Path) -> None:
    _write(root, "config.toml", '[model]\noutput_name = "' + "y" * (10 * MB) + '"\n')


def gen_kohya_deep(root: Path) -> None:
    _write(root, "config.toml", "a = " + "[" * 10_000 + "]" * 10_000 + "\n")


def gen_kohya_utf16(root: Path) -> None:
    _write(root, "config.toml", '[model]\nnetwork_dim = 4\n'.encode("utf-16"))


def gen_kohya_bom(root: Path) -> None:
    _write(root, "config.toml", b'\xef\xbb\xbf[model]\nnetwork_dim = 4\nseed = "x"\n')


def gen_kohya_binary(root: Path) -> None:
    _write(root, "config.toml", b"\x00\x01\x02[model]\x00")


def gen_dataset_toml_deep(root: Path) -> None:
    _write(root, "config.toml", "[model]\nnetwork_dim = 4\n")
    _write(root, "dataset.toml", "[general]\nx = " + "{a = " * 10_000 + "1" + "}" * 10_000
           + "\n")


def gen_dataset_toml_utf16(root: Path) -> None:
    _write(root, "config.toml", "[model]\nnetwork_dim = 4\n")
    _write(root, "dataset.toml", "[general]\nresolution = 512\n".encode("utf-16"))


def gen_gui_10mb(root: Path) -> None:
    _write(root, "preset.json", '{"LoRA_type": "Standard", "output_name": "' + "z" * (10 * MB)
           + '"}')


def gen_gui_halfmb(root: Path) -> None:
    _write(root, "preset.json", '{"LoRA_type": "Standard", "output_name": "' + "z" * (MB // 2)
           + '"}')


def gen_gui_deep_arrays(root: Path) -> None:
    _write(root, "preset.json", '{"a": ' + "[" * 10_000 + "]" * 10_000 + "}")


def gen_gui_deep_objects(root: Path) -> None:
    _write(root, "preset.json", '{"a": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}")


def gen_gui_utf16(root: Path) -> None:
    _write(root, "preset.json", '{"LoRA_type": "Standard"}'.encode("utf-16"))


def gen_gui_utf8_bom(root: Path) -> None:
    _write(root, "preset.json", b'\xef\xbb\xbf{"LoRA_type": "Standard", "network_dim": 8}')


def gen_gui_binary(root: Path) -> None:
    _write(root, "preset.json", b'{"a": "\x00\xff\xfe"}')


def gen_gui_huge_number(root: Path) -> None:
    _write(root, "preset.json", '{"network_dim": 1' + "0" * 5000 + ', "max_train_steps": 1e999}')


def gen_gui_many_keys(root: Path) -> None:
    body = ", ".join(f'"k{i}": {i}' for i in range(2_000))
    _write(root, "preset.json", "{" + body + "}")


def gen_yaml_deep(root: Path) -> None:
    _write(root, "job.yaml", "config: " + "[" * 10_000 + "]" * 10_000 + "\n")


def gen_yaml_deep_block(root: Path) -> None:
    lines = ["config:"] + [" " * (i + 1) + f"k{i}:" for i in range(2000)] + [" " * 2001 + "v"]
    _write(root, "job.yaml", "\n".join(lines) + "\n")


def gen_yaml_10mb(root: Path) -> None:
    _write(root, "job.yaml", "job: extension\nconfig:\n  name: " + "n" * (10 * MB) + "\n")


def gen_yaml_halfmb(root: Path) -> None:
    _write(root, "job.yaml", "job: extension\nconfig:\n  name: " + "n" * (MB // 2)
           + "\n  process:\n    - type: sd_trainer\n")


def gen_yaml_utf16(root: Path) -> None:
    _write(root, "job.yaml", "config:\n  name: x\n".encode("utf-16"))


def gen_yaml_binary(root: Path) -> None:
    _write(root, "job.yaml", b"config:\n  name: \x00\x01\n")


def gen_yaml_billion_laughs(root: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append("config:\n  process:\n    - type: sd_trainer\n      x: *a11")
    _write(root, "job.yaml", "\n".join(lines) + "\n")


def gen_shell_10mb(root: Path) -> None:
    _write(root, "train.sh", "accelerate launch flux_train_network.py --output_name "
           + "o" * (10 * MB) + "\n")


def gen_shell_halfmb_line(root: Path) -> None:
    _write(root, "train.sh", "accelerate launch flux_train_network.py --output_name "
           + "o" * (MB // 2) + "\n")


def gen_shell_many_continuations(root: Path) -> None:
    _write(root, "train.sh", "accelerate launch flux_train_network.py \\\n"
           + "  --seed 1 \\\n" * 10_000 + "  --network_dim 4\n")


def gen_shell_deep_substitution(root: Path) -> None:
    _write(root, "train.sh", "X=" + "$(" * 5000 + "echo" + ")" * 5000
           + "\npython flux_train_network.py --output_name $X\n")


def gen_shell_deep_braces(root: Path) -> None:
    _write(root, "train.sh", "X=" + "${A:-" * 5000 + "d" + "}" * 5000
           + "\npython flux_train_network.py --output_name $X\n")


def gen_shell_deep_quotes(root: Path) -> None:
    _write(root, "train.sh", 'X="' + '$(echo "' * 3000 + "v" + '")' * 3000 + '"'
           + "\npython flux_train_network.py --output_name \"$X\"\n")


def gen_shell_variable_growth(root: Path) -> None:
    lines = ["A=xxxxxxxxxx"] + ["A=$A$A$A$A"] * 30
    _write(root, "train.sh", "\n".join(lines)
           + "\npython flux_train_network.py --output_name \"$A\"\n")


def gen_shell_binary(root: Path) -> None:
    _write(root, "train.sh", b"#!/bin/sh\n\x7fELF\x00\x01\x02 python flux_train_network.py\n")


def gen_shell_utf16(root: Path) -> None:
    _write(root, "train.sh", "python flux_train_network.py --seed 1\n".encode("utf-16"))


def gen_shell_bom(root: Path) -> None:
    _write(root, "train.sh", b"\xef\xbb\xbfpython flux_train_network.py --seed 1\n")


def gen_shell_latin1(root: Path) -> None:
    _write(root, "train.sh", "python flux_train_network.py --output_name café\n".encode(
        "latin-1"))


def gen_shell_many_args(root: Path) -> None:
    _write(root, "train.sh", "python flux_train_network.py" + " --seed 1" * 20_000 + "\n")


def gen_md_10mb(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docs/README.md", "# Training\n\n- network_dim: " + "9" * (10 * MB) + "\n")


def gen_md_halfmb_line(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docs/README.md", "# Training\n\n- network_dim: 16 " + "a " * (MB // 4)
           + "\n")


def gen_md_many_blocks(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    block = "<!-- lorac:begin profile=p keys=network_dim -->\n<!-- lorac:end -->\n"
    _write(root, "docs/README.md", "# Doc\n\n" + block * 5000)


def gen_md_deep_headings(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docs/README.md", "".join(f"{'#' * (i % 6 + 1)} h{i}\nnetwork_dim: {i}\n"
                                           for i in range(5_000)))


def gen_md_binary(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docs/README.md", b"# x\n\x00\x01\xff\xfe network_dim: 4\n")


def gen_md_utf16(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docs/README.md", "# Doc\n\n- network_dim: 32\n".encode("utf-16"))


def gen_md_fence_flood(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docs/README.md", "```\n" * 30_000 + "<!-- lorac:begin profile=p\n" * 1000)


def gen_env_10mb(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docker/.env", "MODEL_DIR=" + "m" * (10 * MB) + "\n")


def gen_env_halfmb(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docker/.env", "MODEL_DIR=" + "m" * (MB // 2) + "\n")


def gen_env_binary(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docker/.env", b"A=\x00\xff\nB=2\n")


def gen_env_utf16(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docker/.env", "A=1\nB=2\n".encode("utf-16"))


def gen_env_many(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "docker/.env", "".join(f"V{i}=${{V{i - 1}:-x}}\n" for i in range(1, 5_000)))


def gen_env_self_reference(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE + '[saving]\noutput_dir = "${env:A:-o}"\n')
    _write(root, "docker/.env", "A=$A$A$A$A\n" * 40)


def gen_dataset_huge_png(root: Path) -> None:
    _write(root, "data/a.png", _png(50_000, 50_000))
    _write(root, "data/a.txt", "ohwx woman")


def gen_dataset_huge_png_lint(root: Path) -> None:
    gen_dataset_huge_png(root)
    _dataset_profile(root)


def gen_dataset_zero_png(root: Path) -> None:
    _write(root, "data/a.png", _png(0, 0))
    _write(root, "data/a.txt", "ohwx woman")


def gen_dataset_truncated_png(root: Path) -> None:
    _write(root, "data/a.png", _png(512, 512)[:20])
    _write(root, "data/b.png", b"\x89PNG\r\n\x1a\n")
    _write(root, "data/a.txt", "x")


def gen_dataset_png_bomb(root: Path) -> None:
    # a valid header and a zlib stream that inflates to 64 MiB of zeros
    raw = zlib.compress(b"\x00" * (64 * MB), 9)
    _write(root, "data/a.png", _png(8192, 2730, _png_chunk(b"IDAT", raw)
                                     + _png_chunk(b"IEND", b"")))
    _write(root, "data/a.txt", "x")


def gen_dataset_fake_images(root: Path) -> None:
    _write(root, "data/a.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 10)
    _write(root, "data/b.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    _write(root, "data/c.png", b"GIF89a")
    _write(root, "data/d.jpeg", b"")
    _write(root, "data/e.png", os.urandom(64))
    for n in "abcde":
        _write(root, f"data/{n}.txt", "ohwx woman")


def gen_dataset_bad_captions(root: Path) -> None:
    _write(root, "data/a.png", _png(512, 512))
    _write(root, "data/a.txt", "caption\x00with nul")
    _write(root, "data/b.png", _png(512, 512))
    _write(root, "data/b.txt", "ohwx ".encode("utf-16"))
    _write(root, "data/c.png", _png(512, 512))
    _write(root, "data/c.txt", b"\xff\xfe\xfd latin junk")
    _write(root, "data/d.png", _png(512, 512))
    _write(root, "data/d.txt", "w " * (MB))
    _write(root, "data/e.png", _png(512, 512))
    (root / "data" / "e.txt").mkdir()


def gen_dataset_symlink_loop(root: Path) -> None:
    _write(root, "data/a.png", _png(512, 512))
    _write(root, "data/a.txt", "x")
    os.symlink(".", root / "data" / "loop")
    os.symlink("..", root / "data" / "up")
    os.symlink("b.png", root / "data" / "b.png")
    os.symlink("missing.png", root / "data" / "c.png")


def gen_dataset_symlink_loop_lint(root: Path) -> None:
    gen_dataset_symlink_loop(root)
    _dataset_profile(root)


def gen_dataset_image_dir_is_file(root: Path) -> None:
    _write(root, "data", b"not a folder")
    _dataset_profile(root)


def gen_dataset_unreadable_dir(root: Path) -> None:
    _write(root, "data/a.png", _png(512, 512))
    (root / "data").chmod(0)


def gen_dataset_unreadable_image(root: Path) -> None:
    _write(root, "data/a.png", _png(512, 512)).chmod(0)
    _write(root, "data/a.txt", "x")
    _dataset_profile(root)


def gen_dataset_fifo_image(root: Path) -> None:
    (root / "data").mkdir()
    os.mkfifo(root / "data" / "a.png")
    os.mkfifo(root / "data" / "a.txt")


def gen_dataset_odd_names(root: Path) -> None:
    for name in ("-rf.png", "a\nb.png", " .png", "ü.png", "a.b.c.png", ".hidden.png"):
        _write(root, "data/" + name, _png(64, 64))
    _write(root, "data/" + "n" * 250 + ".png", _png(64, 64))


def gen_dataset_many_files(root: Path) -> None:
    data = _png(16, 16)
    for i in range(300):
        _write(root, f"data/{i}.png", data)


def gen_build_out_is_file(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    _write(root, "out", "a file, not a folder\n")


def gen_build_out_symlink(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    (root / "elsewhere").mkdir()
    os.symlink("elsewhere", root / "out")


def gen_build_out_dangling_parent(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE)
    os.symlink("missing-dir", root / "link")


def gen_import_out_symlink(root: Path) -> None:
    _write(root, "config.toml", "[model]\nnetwork_dim = 4\n")
    _write(root, "real.toml", "# keep\n")
    os.symlink("real.toml", root / "out.toml")


def gen_import_out_parent_file(root: Path) -> None:
    _write(root, "config.toml", "[model]\nnetwork_dim = 4\n")
    _write(root, "profiles", "a file where the folder should be\n")


def gen_import_unreadable(root: Path) -> None:
    _write(root, "config.toml", "[model]\nnetwork_dim = 4\n").chmod(0)


def gen_import_fifo(root: Path) -> None:
    os.mkfifo(root / "train.sh")


def gen_import_dir(root: Path) -> None:
    (root / "job.yaml").mkdir()


def gen_import_dataset_symlink_loop(root: Path) -> None:
    _write(root, "config.toml", "[model]\nnetwork_dim = 4\n")
    os.symlink("dataset.toml", root / "dataset.toml")


def gen_profile_newline_name(root: Path) -> None:
    _write(root, "profiles/a\nok.toml:1:1: LRC999 forged finding [x]\nb.toml",
           PROFILE + 'network_args = "x"\n')


#: a Hugging Face token the stand-in trainer prints in two writes, around the 1 MiB cut
SPLIT_TOKEN = "hf_" + "Rr8Tt6Yy4Uu2Ii0Oo8Pp6Aa4Ss2Dd0Ff8Gg"


def gen_run_log_split_token(root: Path) -> None:
    from tests.conftest import fake_trainer

    half = len(SPLIT_TOKEN) // 2  # the first half ends the line's first MiB (LINE_LIMIT)
    bin_dir, sd = fake_trainer(root, f"""#!{sys.executable}
import sys, time
sys.stdout.write("x" * {MB - 6} + " " + {SPLIT_TOKEN[:half]!r})
sys.stdout.flush()
time.sleep(0.3)
sys.stdout.write({SPLIT_TOKEN[half:]!r} + " logged in\\n")
""")
    _write(root, "lorac.toml", f'sd-scripts = "{sd}"\n')
    _write(root, "profiles/p.toml", PROFILE + f'\n[run.env]\nPATH = "{bin_dir}:/usr/bin:/bin"\n')

def gen_profile_many_vars_over_base(root: Path) -> None:
    # merging was quadratic in the keys (10,000 took 8 s, 100,000 over a minute); the 100,000
    # of the issue are timed by bench/resolve_scale.py, which has no 5-second kill
    _write(root, "profiles/base.toml", PROFILE + '\n[vars]\nrank = 16\nlr = 1e-4\n')
    _write(root, "profiles/p.toml", '[profile]\nextends = "base"\n\n[vars]\nrank = 32\n'
           + "".join(f"v{i} = {i}\n" for i in range(30_000)))


def gen_profile_extends_chain_1000(root: Path) -> None:
    _write(root, "profiles/p0000.toml", PROFILE)
    for i in range(1, 1001):
        _write(root, f"profiles/p{i:04d}.toml",
               f'[profile]\nextends = "p{i - 1:04d}"\n\n[training]\nseed = {i}\n')


def gen_profile_extends_symlinked_folder(root: Path) -> None:
    _write(root, "outside/base.toml", PROFILE)
    _write(root, "profiles/p.toml", '[profile]\nextends = "shared/base"\n')
    os.symlink("../outside", root / "profiles" / "shared")


def gen_profile_deep_default(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE + '[saving]\noutput_name = "'
           + "${env:LORAC_CORPUS_UNSET:-" * 10_000 + "x" + "}" * 10_000 + '"\n')


def gen_profile_vars_chain_2000(root: Path) -> None:
    _write(root, "profiles/p.toml", PROFILE.replace("network_dim = 16", 'network_dim = "${v0}"')
           + "[vars]\n" + "".join(f'v{i} = "${{v{i + 1}}}"\n' for i in range(2000))
           + "v2000 = 16\n")


def _safetensors(header: dict, data: bytes = b"") -> bytes:
    import json

    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def gen_lora_empty(root: Path) -> None:
    _write(root, "x.safetensors", b"")


def gen_lora_huge_header_length(root: Path) -> None:
    _write(root, "x.safetensors", struct.pack("<Q", 2**63) + b"{}")


def gen_lora_header_cut(root: Path) -> None:
    _write(root, "x.safetensors", _safetensors({"a.lora_up.weight": {
        "dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}})[:40])


def gen_lora_header_not_json(root: Path) -> None:
    _write(root, "x.safetensors", struct.pack("<Q", 6) + b"\x00\xffPNG\r\n")


def gen_lora_header_deep(root: Path) -> None:
    body = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _write(root, "x.safetensors", struct.pack("<Q", len(body)) + body)


def gen_lora_claims_20gb(root: Path) -> None:
    _write(root, "x.safetensors", _safetensors({"a.lora_down.weight": {
        "dtype": "F32", "shape": [5 << 30], "data_offsets": [0, 20 << 30]}}, b"\0" * 64))


def gen_lora_bad_dtype(root: Path) -> None:
    _write(root, "x.safetensors", _safetensors({"a.lora_up.weight": {
        "dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0"))


def gen_lora_not_a_lora(root: Path) -> None:
    _write(root, "x.safetensors", _safetensors({"model.weight": {
        "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))


def gen_lora_fifo(root: Path) -> None:
    os.mkfifo(root / "x.safetensors")


def gen_user_lora_in_build_folder(root: Path) -> None:
    """A user's own file in a folder lorac once built (written here: no weights in git)."""
    _write(root, "out/my-lora.safetensors", b"my lora")


def gen_real_checkpoint_stand_in(root: Path) -> None:
    """A folder holding what stands for real checkpoints, with no lorac-synth.json."""
    _write(root, "models/flux1-dev.safetensors", b"real weights")


GENERATORS: dict[str, Callable[[Path], None]] = {
    name[4:]: fn for name, fn in globals().items() if name.startswith("gen_") and callable(fn)}


# --------------------------------------------------------------------------- running


def load_cases() -> list[dict]:
    """The cases of ``cases.toml``; each names a folder, a generator or both."""

    with open(CORPUS / "cases.toml", "rb") as fh:
        cases = tomllib.load(fh)["case"]
    return cases


def _snapshot(root: Path) -> set[tuple[str, str]]:
    """Every entry under ``root`` with what it holds: a regular file's size and hash, a link's
    target (a file that cannot be read is compared by size)."""

    import hashlib
    import stat

    out = set()
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in dirs + names:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            what = stat.filemode(st.st_mode)[0]
            if stat.S_ISLNK(st.st_mode):
                what += os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                what += f"{st.st_size}"
                try:
                    with open(path, "rb") as fh:
                        what += hashlib.sha256(fh.read()).hexdigest()
                except OSError:
                    pass
            out.add((os.path.relpath(path, root), what))
    return out


def _restore_permissions(root: Path) -> None:
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in dirs + names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)


def prepare(case: dict, root: Path) -> None:
    """Copy the case's folder into ``root`` and run its generator."""

    folder = CORPUS / case.get("files", case["name"])
    if folder.is_dir():
        shutil.copytree(folder, root, dirs_exist_ok=True, symlinks=True)
    elif "generate" not in case:
        raise AssertionError(f"case {case['name']}: no folder {folder} and no generator")
    if "generate" in case:
        GENERATORS[case["generate"]](root)


def run_case(args: list[str], root: Path, timeout: float = TIMEOUT) -> tuple[int | str, str]:
    """Run lorac in a forked child inside ``root``: (exit code or what went wrong, output)."""

    from lorac.__main__ import main

    log = root.parent / f".{root.name}.log"
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 99
        try:
            os.chdir(root)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                              closefd=False)
            sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                              closefd=False)
            os.environ["LORAC_NO_CACHE"] = "1"
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 99)
    deadline = time.monotonic() + timeout
    status: int | str
    while True:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(raw):
                status = f"killed by signal {os.WTERMSIG(raw)}"
            else:
                status = os.WEXITSTATUS(raw)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = f"timed out after {timeout:.0f} s"
            break
        time.sleep(0.005)
    output = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    log.unlink(missing_ok=True)
    return status, output


#: cases run once in-process before the others, so that every forked child starts with the
#: modules, plugins, inventories and schema already loaded (a cold start costs ~0.4 s a case)
WARM_UP = ("build-nan-option", "kohya-empty", "gui-duplicate-keys", "yaml-duplicate-keys",
           "shell-heredoc", "markdown-unclosed-fence", "env-bom-crlf", "dataset-lint-bad-images",
           "dataset-check-captions-only", "build-unknown-option")


def _warm_up() -> None:
    """Run the :data:`WARM_UP` cases in this process (results ignored)."""

    import contextlib
    import io
    import tempfile

    from lorac.__main__ import main

    by_name = {c["name"]: c for c in CASES}
    for name in WARM_UP:
        with tempfile.TemporaryDirectory() as tmp:
            prepare(by_name[name], Path(tmp))
            sink = io.StringIO()
            with (contextlib.chdir(tmp), contextlib.redirect_stdout(sink),
                  contextlib.redirect_stderr(sink)):
                main(list(by_name[name]["command"]))


CASES = load_cases()


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    _warm_up()


def test_cases_are_well_formed() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    assert len(CASES) >= 200
    for case in CASES:
        assert set(case) <= {"name", "command", "exit", "fragment", "generate", "files",
                             "output", "reader", "absent"}, case["name"]
        assert case["exit"] in (0, 1, 2), case["name"]
        assert case["fragment"], case["name"]
        assert case.get("generate", "x") == "x" or case["generate"] in GENERATORS, case["name"]
        assert "generate" in case or (CORPUS / case.get("files", case["name"])).is_dir(), \
            case["name"]
    unused = set(GENERATORS) - {c.get("generate") for c in CASES}
    assert not unused, f"generators no case uses: {sorted(unused)}"


#: generators whose input is a file without read permission, which root reads anyway unless
#: file modes are made to bind it
NEEDS_FILE_MODES = {"profile_unreadable", "import_unreadable", "dataset_unreadable_dir",
                    "dataset_unreadable_image"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input(case: dict, tmp_path: Path) -> None:
    modes = file_modes_bind if case.get("generate") in NEEDS_FILE_MODES else contextlib.nullcontext
    root = tmp_path / "project"
    root.mkdir()
    prepare(case, root)
    before = _snapshot(root)
    try:
        with modes():
            status, output = run_case(case["command"], root)
        after = _snapshot(root)
    finally:
        _restore_permissions(root)
    shown = f"exit {status}; output:\n{output[-3000:]}"
    assert "Traceback" not in output, shown
    assert "internal error" not in output, shown
    assert status == case["exit"], shown
    assert case["fragment"] in output, f"{case['fragment']!r} not in the output; {shown}"
    if case["command"][0] in ("build", "import", "run", "synth") and status != 0:
        assert after == before, f"files added, removed or changed: {sorted(after ^ before)}"
    if "output" in case:
        assert not os.path.lexists(root / case["output"]), shown
    written = [root / name for name in sorted({name for name, _ in after - before})
               if (root / name).is_file() and not (root / name).is_symlink()]
    for text in case.get("absent", ()):
        assert text not in output, f"{text!r} in the output; {shown}"
        for path in written:
            assert text not in path.read_text(encoding="utf-8", errors="replace"), \
                f"{text!r} in {path.relative_to(root)}"


if __name__ == "__main__":  # probe: print what every case does now
    import tempfile

    _warm_up()
    only = set(sys.argv[1:])
    for case in CASES:
        if only and case["name"] not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "project"
            root.mkdir()
            prepare(case, root)
            t0 = time.monotonic()
            status, output = run_case(case["command"], root)
            _restore_permissions(root)
            took = time.monotonic() - t0
        ok = status == case["exit"] and case["fragment"] in output and "Traceback" not in output
        flag = "ok  " if ok else "FAIL"
        print(f"{flag} {case['name']} [{status}, {took:.2f}s] {case['command']}")
        if not ok or "-v" in os.environ.get("PROBE", ""):
            print("     " + output.strip().replace("\n", "\n     ")[-1500:])
