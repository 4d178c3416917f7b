"""Generate ``backends/kohya/lycoris.toml``: what ``network_module = "lycoris.kohya"`` reads.

LyCORIS (the ``lycoris-lora`` package) is a third-party network module for sd-scripts: its
``lycoris/kohya.py`` ``create_network(..., **kwargs)`` receives every ``--network_args`` entry
as a string. This reads an unpacked release of the package with :mod:`ast` and plain text (no
import, no torch) and records, with file and line:

* the ``network_args`` keys of ``create_network`` in the shape of ``network_modules.toml``
  (:func:`lorac.trainers.kohya.network_args_gen.analyse_module`), with the keys parsed by
  ``str_bool`` (``str(v).lower() != "false"``: anything but ``false`` is true);
* the algorithm names (``network_module_dict`` of ``lycoris/wrapper.py``), the built-in presets
  (``BUILTIN_PRESET_CONFIGS`` of ``lycoris/config.py``) and the deprecated key aliases;
* how each algorithm turns ``network_alpha`` into a scale, each with the line that shows it.

The release is pinned by the sha256 of its sdist, read from the ``.lorac-commit`` file of the
unpacked folder (``pypi:lycoris-lora==4.1.3#sha256=…``)::

    python -m lorac.trainers.kohya.lycoris_gen --from /path/to/lycoris-lora-4.1.3 \
        [--out backends/kohya]
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

from lorac.trainers.inventory_gen import run_generator
from lorac.trainers.kohya.network_args_gen import _toml_value, analyse_module

OUT_NAME = "lycoris.toml"
MODULE = "lycoris.kohya"

#: How each algorithm scales, and the source line that shows it: (algo, kind, file, pattern).
#: ``alpha/dim``: scale = alpha / dim (alpha 0 or unset → dim; ``rs_lora`` → alpha / √dim);
#: ``lokr``: alpha / dim, except that alpha := dim (scale 1) where both Kronecker factors are
#: full matrices; ``none``: alpha is not a scale (OFT/BOFT keep it as the norm constraint).
SCALING: tuple[tuple[str, str, str, str], ...] = (
    ("lora", "alpha/dim", "lycoris/modules/locon.py", r"self\.scale = alpha / r_factor"),
    ("locon", "alpha/dim", "lycoris/modules/locon.py", r"self\.scale = alpha / r_factor"),
    ("loha", "alpha/dim", "lycoris/modules/loha.py", r"self\.scale = alpha / r_factor"),
    ("lokr", "lokr", "lycoris/modules/lokr.py", r"if self\.use_w2 and self\.use_w1:"),
    ("dylora", "alpha/dim", "lycoris/modules/dylora.py", r"self\.scale = alpha / self\.lora_dim"),
    ("glora", "alpha/dim", "lycoris/modules/glora.py", r"self\.scale = alpha / "),
    ("tlora", "alpha/dim", "lycoris/modules/tlora.py", r"self\.scale = alpha / "),
    ("diag-oft", "none", "lycoris/modules/diag_oft.py", r"self\.constraint = constraint \*"),
    ("boft", "none", "lycoris/modules/boft.py", r"self\.constraint = constraint \*"),
    ("ia3", "none", "lycoris/modules/ia3.py", r"alpha=1"),
    ("full", "none", "lycoris/modules/full.py", r"alpha=1"),
)


class LycorisError(Exception):
    """The folder is not an unpacked lycoris-lora release lorac can read."""


def pin_of(folder: Path) -> tuple[str, str]:
    """``(version, sha256)`` from the folder's ``.lorac-commit``
    (``pypi:lycoris-lora==4.1.3#sha256=…``)."""
    marker = folder / ".lorac-commit"
    text = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    found = re.fullmatch(r"pypi:lycoris-lora==([\w.]+)#sha256=([0-9a-f]{64})", text)
    if found is None:
        raise LycorisError(f"{marker}: expected 'pypi:lycoris-lora==VERSION#sha256=HEX'")
    return found.group(1), found.group(2)


def _dict_keys(path: Path, name: str) -> tuple[list[str], int, int]:
    """Keys of the module-level dict literal ``name`` in *path*, with its first/last line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name
                and isinstance(node.value, ast.Dict)):
            keys = [k.value for k in node.value.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            return keys, node.lineno, node.end_lineno or node.lineno
    raise LycorisError(f"{path}: no dict {name}")


def _aliases(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "deprecated_arg_dict"):
            return {k: v for k, v in ast.literal_eval(node.value).items()}
    raise LycorisError(f"{path}: no deprecated_arg_dict")


def _line(folder: Path, rel: str, pattern: str) -> int:
    path = folder / rel
    if not path.is_file():
        raise LycorisError(f"{rel} not found in {folder}")
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if re.search(pattern, text):
            return number
    raise LycorisError(f"{rel}: {pattern!r} not found")


def _str_bool_line(folder: Path) -> int:
    return _line(folder, "lycoris/utils/__init__.py", r"def str_bool\(")


def render(folder: Path) -> str:
    """The text of ``lycoris.toml`` for the unpacked release at *folder*."""
    version, sha256 = pin_of(folder)
    facts = analyse_module(folder / "lycoris" / "kohya.py")
    algos, a_first, a_last = _dict_keys(folder / "lycoris" / "wrapper.py", "network_module_dict")
    presets, p_first, p_last = _dict_keys(folder / "lycoris" / "config.py",
                                          "BUILTIN_PRESET_CONFIGS")
    aliases = _aliases(folder / "lycoris" / "wrapper.py")
    lines = [
        "# GENERATED by `python -m lorac.trainers.kohya.lycoris_gen --from <lycoris-lora>`; "
        "do not edit.",
        "# The network_args of LyCORIS's sd-scripts entry point (network_module = "
        "\"lycoris.kohya\"),",
        "# its algorithms and presets, and how each algorithm scales by alpha.",
        "",
        "[source]",
        'package = "lycoris-lora"',
        f'version = "{version}"',
        f'sha256 = "{sha256}"',
        "",
        "[lycoris]",
        "algos = [" + ", ".join(f'"{a}"' for a in algos) + "]",
        f'algos_at = "lycoris/wrapper.py:{a_first}-{a_last}"',
        "presets = [" + ", ".join(f'"{p}"' for p in presets) + "]",
        f'presets_at = "lycoris/config.py:{p_first}-{p_last}"',
        f'str_bool_at = "lycoris/utils/__init__.py:{_str_bool_line(folder)}"',
        "",
        "[lycoris.aliases]",
        *[f'{k} = "{v}"' for k, v in sorted(aliases.items())],
        "",
        "[lycoris.scaling]",
    ]
    for algo, kind, rel, pattern in SCALING:
        if algo in algos:
            at = f"{rel}:{_line(folder, rel, pattern)}"
            lines.append(f'"{algo}" = {{ kind = "{kind}", at = "{at}" }}')
    lines += ["", f'[modules."{MODULE}"]', 'file = "lycoris/kohya.py"',
              f"create_network = {facts['create_network']}", "",
              f'[modules."{MODULE}".args]']
    lines += [f"{key} = {line}" for key, line in facts["args"].items()]
    for table in ("bools", "bools_lower", "bools_truthy", "bools_str"):
        lines += ["", f'[modules."{MODULE}".{table}]']
        lines += [f"{key} = {line}" for key, line in facts[table].items()]
    lines += ["", f'[modules."{MODULE}".types]']
    lines += [f'{key} = {{ type = "{kind}", line = {line} }}'
              for key, (kind, line) in facts["types"].items()]
    lines += ["", f'[modules."{MODULE}".defaults]']
    lines += [f"{key} = {_toml_value(value)}" for key, value in facts["defaults"].items()]
    return "\n".join(lines) + "\n"


def generate(folder: Path, out_dir: Path) -> Path:
    """Write ``lycoris.toml`` for the release at *folder* into *out_dir*; return its path."""
    text = render(folder)  # before anything is written: a bad release leaves nothing behind
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / OUT_NAME
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    return run_generator(argv, prog="lorac.trainers.kohya.lycoris_gen", doc=__doc__ or "",
                         source_help="an unpacked lycoris-lora release with a .lorac-commit file",
                         backend="kohya",
                         generate=generate,
                         errors=(OSError, ValueError, SyntaxError, LycorisError))


if __name__ == "__main__":
    raise SystemExit(main())
