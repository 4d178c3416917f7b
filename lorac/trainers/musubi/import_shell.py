"""Import musubi-tuner commands (a shell script, or a training ``--config_file`` TOML) into one
profile.

A musubi run is three commands; a script may hold all of them, or only some. Every command
that names a musubi script (``wan_cache_latents.py``, ``wan_cache_text_encoder_outputs.py``,
``wan_train_network.py`` …, by path or as ``python -m musubi_tuner.X``) is read: its options
are checked against that script's inventory, ``--config_file`` and ``--dataset_config`` files
are read (musubi's dataset format: ``[general]`` and ``[[datasets]]``), and everything goes into
one profile, where one value feeds every step that reads it. What has no place there is kept as
a comment and reported:

* an option given two steps with different values (``--vae`` for caching and another for
  training): the training step's value is kept, the other reported (LRC090);
* ``--i2v`` for latent caching: the family implies it (LRC095);
* an option the script does not have (LRC093); ``accelerate launch`` options other than the
  ones ``[run]`` has (LRC090).

Variables assigned in the script (``DIT=/models/wan.safetensors``) are expanded; the process
environment is not read. The family comes from ``--family``, else from the training (or
caching) script's architecture and its ``--task`` / ``--model_version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorac.core.diagnostics import LoracError
from lorac.importers import (
    Draft,
    Settings,
    Source,
    convert_text,
    find_relative,
    parse_toml,
    raw_text,
    set_checked,
)
from lorac.trainers.musubi import knowledge

#: ``accelerate launch`` options that ``[run]`` holds.
_ACCELERATE = {"mixed_precision": "mixed_precision", "num_processes": "gpus",
               "num_machines": "num_machines", "machine_rank": "machine_rank",
               "main_process_ip": "main_process_ip", "main_process_port": "main_process_port",
               "num_cpu_threads_per_process": "num_cpu_threads_per_process"}
_MANAGED = ("dataset_config", "config_file")


def _scripts() -> dict[str, tuple[str, str]]:
    """Script file name → (architecture key, step), for every architecture's three scripts."""
    out: dict[str, tuple[str, str]] = {}
    for key, arch in knowledge.architectures().items():
        for step in knowledge.STEPS:
            out[Path(arch["steps"][step]["script"]).name] = (key, step)
    return out


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each command line, continuations joined."""
    out: list[tuple[int, str]] = []
    start, parts = 0, []
    for n, line in enumerate(text.splitlines(), start=1):
        if not parts:
            start = n
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(line)
        out.append((start, " ".join(parts)))
        parts = []
    if parts:
        out.append((start, " ".join(parts)))
    return out


def _commands(source: Source) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from lorac.scan import shell

    values = shell.definitions([shell.scan(source.text, source.display)])
    scripts = _scripts()
    commands = []
    for line, text in _logical_lines(source.text):
        if text.lstrip().startswith("#"):
            continue
        for statement in shell.split_words(text):
            words = [shell.unquote(w)[0] for w, _ in statement]
            for i, word in enumerate(words):
                name = Path(word).name
                if word.startswith("musubi_tuner.") and i and words[i - 1] == "-m":
                    name = word.split(".", 1)[1] + ".py"
                if name in scripts:
                    arch, step = scripts[name]
                    commands.append({"line": line, "arch": arch, "step": step,
                                     "script": name, "before": words[:i],
                                     "words": words[i + 1:]})
                    break
    return commands, values


def _parse_words(words: list[str]) -> list[tuple[str, list[str] | None]]:
    """``--name=value`` / ``--name v1 v2`` / ``--flag`` → (name, values or None for a flag)."""
    out: list[tuple[str, list[str] | None]] = []
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            out.append((name.replace("-", "_") if name not in ("flash-attn",) else "flash_attn",
                        [value] if eq else []))
        elif out and out[-1][1] is not None:
            out[-1][1].append(word)
    return [(n, v if v else None) for n, v in out]


def _family_for(arch: str, variant: dict[str, Any]) -> str | None:
    archs = knowledge.architectures()
    defaults = {name: spec.get("default") for name, spec in archs[arch]["variants"].items()}
    wanted = {**defaults, **variant}
    for name, fam in knowledge.families().items():
        if fam.architecture != arch:
            continue
        if all(wanted.get(k) == v for k, v in fam.variant.items()):
            return name
    return None


def read(source: Source, settings: Settings) -> Draft:
    """Read ``source``: a shell script running musubi commands, or a training config TOML."""

    draft = Draft(kind="musubi", source=source.display, backend="musubi")
    base = source.path.parent
    collected: dict[str, list[tuple[str, str, Any, int]]] = {}  # name -> (step, script, value)
    arch: str | None = None
    if source.path.suffix.lower() == ".toml":
        fam = knowledge.family(settings.family)
        if fam is None:
            raise LoracError(f"{source.display}: a musubi training config does not name its "
                             "model; pass --family (one of "
                             f"{', '.join(sorted(knowledge.families()))})")
        arch = fam.architecture
        _read_config(draft, source.path, collected, "train", arch)
    else:
        commands, values = _commands(source)
        if not commands:
            raise LoracError(f"{source.display}: no musubi-tuner command found (a "
                             "*_cache_latents.py, *_cache_text_encoder_outputs.py or "
                             "*_train_network.py)")
        for cmd in commands:
            arch = cmd["arch"] if cmd["step"] == "train" or arch is None else arch
            _read_command(draft, cmd, values, base, collected, settings)
    assert arch is not None
    variant = {}
    for name in knowledge.architectures()[arch]["variants"]:
        if name in collected:
            variant[name] = collected[name][-1][2]
    draft.family = settings.family or _family_for(arch, variant)
    fam = knowledge.family(draft.family)
    if fam is None:
        draft.report("LRC095", f"no lorac family for musubi architecture {arch} with "
                     f"{variant or 'its defaults'}; set [profile] family")
    _merge(draft, collected, fam)
    if settings.dataset_config is not None:
        draft.dataset = _dataset(settings.dataset_config, draft)
    return draft


def _read_command(draft: Draft, cmd: dict[str, Any], values: dict[str, str], base: Path,
                  collected: dict[str, list[tuple[str, str, Any, int]]],
                  settings: Settings) -> None:
    from lorac.scan import shell

    line, step, script = cmd["line"], cmd["step"], cmd["script"]
    arch = knowledge.architectures()[cmd["arch"]]
    inv = knowledge.script_inventory(arch["steps"][step]["script"])
    if step == "train" and "launch" in cmd["before"]:
        launch = cmd["before"][cmd["before"].index("launch") + 1:]
        for name, texts in _parse_words(launch):
            key = _ACCELERATE.get(name)
            value = (texts or ["true"])[0]
            if key is None:
                draft.unmap(f"accelerate.{name}", value, "LRC090", f"accelerate launch "
                            f"--{name} has no [run] equivalent", line=line, section="run")
                continue
            expanded = shell.evaluate(value, values)
            draft.run[key] = _number(expanded if expanded is not None else value)
    for name, texts in _parse_words(cmd["words"]):
        expanded = None if texts is None else [shell.evaluate(t, values) for t in texts]
        if expanded is not None and any(e is None for e in expanded):
            draft.unmap(name, " ".join(texts or []), "LRC092", f"{name}: {raw_text(texts)} "
                        "uses a variable the script does not set", line=line)
            continue
        if name == "dataset_config":
            path = find_relative(expanded[0], base) if expanded else None
            if settings.dataset_config is None:
                if path is None:
                    draft.report("LRC095", f"dataset config {raw_text(expanded)} not found; "
                                 "pass --dataset-config FILE", line=line)
                else:
                    draft.dataset = _dataset(path, draft)
            continue
        if name == "config_file":
            path = find_relative(expanded[0] if expanded[0].endswith(".toml")
                                 else expanded[0] + ".toml", base) if expanded else None
            if path is None:
                draft.report("LRC095", f"config file {raw_text(expanded)} not found; its "
                             "options are not imported", line=line)
            else:
                _read_config(draft, path, collected, step, cmd["arch"])
            continue
        opt = inv.options.get(name) or inv.get(f"--{name}")
        if opt is None:
            draft.unmap(name, " ".join(texts or []), "LRC093", f"{name!r} is not an option of "
                        f"{script}", line=line)
            continue
        try:
            value: Any = True if texts is None else (
                [convert_text(opt, t) for t in expanded] if opt.is_list else
                convert_text(opt, expanded[0]))
        except ValueError as exc:
            draft.unmap(name, " ".join(texts or []), "LRC091", f"{name}: {exc}", line=line)
            continue
        collected.setdefault(opt.dest, []).append((step, script, value, line))


def _read_config(draft: Draft, path: Path, collected: dict[str, list[tuple[str, str, Any, int]]],
                 step: str, arch: str) -> None:
    from lorac.importers import read_source

    src = read_source(path)
    doc = parse_toml(src)
    inv = knowledge.script_inventory(knowledge.architectures()[arch]["steps"][step]["script"])
    for section, table in doc.data.items():
        items = table.items() if isinstance(table, dict) else [(section, table)]
        for key, value in items:
            where = (section, key) if isinstance(table, dict) else (section,)
            line = doc.position(where)[0]
            if key in _MANAGED:
                continue
            opt = inv.options.get(key)
            if opt is None:
                draft.unmap(key, value, "LRC093", f"{key!r} is not an option of "
                            f"{Path(inv.script).name}", line=line, path=src.display)
                continue
            collected.setdefault(key, []).append((step, Path(inv.script).name, value, line))


def _merge(draft: Draft, collected: dict[str, list[tuple[str, str, Any, int]]],
           fam: knowledge.Family | None) -> None:
    order = {s: i for i, s in enumerate(knowledge.STEPS)}
    for name, uses in collected.items():
        uses = sorted(uses, key=lambda u: -order[u[0]])  # training first
        _, script, value, line = uses[0]
        if name == "i2v" and fam is not None and fam.i2v:
            draft.report("LRC095", f"--i2v ({script}) is implied by family {fam.name}",
                         line=line)
            continue
        if fam is not None and fam.variant.get(name) == value:
            continue  # the family sets it
        for _, other_script, other, other_line in uses[1:]:
            if other != value:
                draft.unmap(name, other, "LRC090", f"{name} is {raw_text(other)} for "
                            f"{other_script} but {raw_text(value)} for {script}; a profile "
                            "gives every step one value (kept the latter)", line=other_line)
        opt = _option_anywhere(name)
        if opt is not None:
            set_checked(draft, opt, value, key=name, line=line)
        else:
            draft.set(name, value, line=line)


def _option_anywhere(name: str) -> Any:
    for arch in knowledge.architectures().values():
        for step in knowledge.STEPS:
            opt = knowledge.script_inventory(arch["steps"][step]["script"]).options.get(name)
            if opt is not None:
                return opt
    return None


def _dataset(path: Path, draft: Draft) -> dict[str, Any]:
    """A musubi dataset config (``[general]`` + ``[[datasets]]``) as ``[dataset]``."""
    from lorac.importers import read_source

    src = read_source(Path(path))
    data = parse_toml(src).data
    out: dict[str, Any] = dict(data.get("general") or {})
    datasets = data.get("datasets")
    if isinstance(datasets, list):
        out["datasets"] = [dict(d) for d in datasets if isinstance(d, dict)]
    for key in data:
        if key not in ("general", "datasets"):
            draft.unmap(f"dataset.{key}", data[key], "LRC090", f"[{key}] is not part of "
                        "musubi-tuner's dataset config", path=src.display, section="dataset")
    return out


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text

