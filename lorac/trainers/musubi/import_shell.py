"""Import musubi-tuner commands (a shell script, or a training ``--config_file`` TOML) into one
profile.

A musubi run is three commands; a script may hold all of them, or only some. The script is
read without running it by :mod:`lorac.importers.shell`, as the sd-scripts shell importer reads
its launchers (variables, ``eval``, sourced files, ``--env`` files), and every command that names
a musubi script (``wan_cache_latents.py``, ``wan_cache_text_encoder_outputs.py``,
``wan_train_network.py`` …, by path or as ``python -m musubi_tuner.X``) is read: its options
are parsed with that script's inventory and become profile values by the same rules
(:func:`lorac.importers.shell.import_value`: a value that reads an environment variable keeps
it as ``${env:NAME:-default}``, one that cannot be known is reported, LRC092). ``--config_file``
and ``--dataset_config`` files are read (musubi's dataset format: ``[general]`` and
``[[datasets]]``); a dataset config that is not found, or whose path lies behind a variable,
stays the ``dataset_config`` option, which the musubi backend hands to every step as it is.
Everything goes into one profile, where one value feeds every step that reads it. What has no
place there is kept as a comment and reported:

* an option given two steps with different values (``--vae`` for caching and another for
  training): the training step's value is kept, the other reported (LRC090);
* ``--i2v`` for latent caching: the family implies it (LRC095);
* an option the script does not have (LRC093); ``accelerate launch`` options other than the
  ones ``[run]`` has (LRC090).

The family comes from ``--family``, else from the training (or caching) script's architecture
and its ``--task`` / ``--model_version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lorac.core.diagnostics import LoracError
from lorac.importers import (
    Draft,
    Settings,
    Source,
    Value,
    find_relative,
    parse_toml,
    raw_text,
    set_checked,
    take_dataset_config,
)
from lorac.importers.shell import (
    Lit,
    Val,
    explained,
    import_value,
    interpret,
    literal,
    parse_args,
    shown,
)
from lorac.trainers.musubi import knowledge

#: ``accelerate launch`` options that ``[run]`` holds.
_ACCELERATE = {"mixed_precision": "mixed_precision", "num_processes": "gpus",
               "num_machines": "num_machines", "machine_rank": "machine_rank",
               "main_process_ip": "main_process_ip", "main_process_port": "main_process_port",
               "num_cpu_threads_per_process": "num_cpu_threads_per_process"}
_MANAGED = ("dataset_config", "config_file")
#: option name → ``(step, script, value, line, the command line's Value or None)`` of each use
_Collected = dict[str, list[tuple[str, str, Any, int, Value | None]]]


def _scripts() -> dict[str, tuple[str, str]]:
    """Script file name → (architecture key, step), for every architecture's three scripts."""
    out: dict[str, tuple[str, str]] = {}
    for key, arch in knowledge.architectures().items():
        for step in knowledge.STEPS:
            out[Path(arch["steps"][step]["script"]).name] = (key, step)
    return out


def _script_at(fields: list[Val], scripts: dict[str, tuple[str, str]]) -> tuple[int, str] | None:
    """Where ``fields`` name a musubi script (by path, or ``-m musubi_tuner.X``), and its file
    name."""

    for i, val in enumerate(fields):
        if not val or not isinstance(val[-1], Lit):
            continue
        text = val[-1].text
        name = text.replace("\\", "/").rsplit("/", 1)[-1]
        if text.startswith("musubi_tuner.") and i and literal(fields[i - 1]) == "-m":
            name = text.split(".", 1)[1] + ".py"
        if name in scripts:
            return i, name
    return None


def _commands(source: Source, settings: Settings,
              draft: Draft) -> tuple[list[dict[str, Any]], set[str]]:
    """The musubi commands of the script, in order, and the variables a report of a missing
    sourced file already names."""

    scripts = _scripts()
    state = interpret(source, settings, draft,
                      lambda fields: _script_at(fields, scripts) is not None)
    commands = []
    for fields, line, _ in state.commands:
        found = _script_at(fields, scripts)
        assert found is not None
        i, name = found
        arch, step = scripts[name]
        commands.append({"line": line, "arch": arch, "step": step, "script": name,
                         "before": fields[:i], "args": fields[i + 1:]})
    return commands, explained(state)


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
    collected: _Collected = {}
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
        commands, quiet = _commands(source, settings, draft)
        if not commands:
            raise LoracError(f"{source.display}: no musubi-tuner command found (a "
                             "*_cache_latents.py, *_cache_text_encoder_outputs.py or "
                             "*_train_network.py)")
        for cmd in commands:
            arch = cmd["arch"] if cmd["step"] == "train" or arch is None else arch
            _read_command(draft, cmd, base, collected, settings, quiet)
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


def _read_command(draft: Draft, cmd: dict[str, Any], base: Path,
                  collected: _Collected,
                  settings: Settings, quiet: set[str]) -> None:
    line, step, script = cmd["line"], cmd["step"], cmd["script"]
    arch = knowledge.architectures()[cmd["arch"]]
    inv = knowledge.script_inventory(arch["steps"][step]["script"])
    before = [literal(w) for w in cmd["before"]]
    if step == "train" and "launch" in before:
        launch = cmd["before"][before.index("launch") + 1:]
        _accelerate(draft, launch, line)
    for name, vals, wline in parse_args(draft, cmd["args"], inv, line, script):
        if name == "dataset_config":
            _dataset_config(draft, inv, vals, wline, base, settings, quiet)
            continue
        if name == "config_file":
            text = literal(vals[0]) if len(vals) == 1 else None
            path = find_relative(text if text.endswith(".toml") else text + ".toml", base) \
                if text else None
            if path is None:
                draft.report("LRC095", f"config file {' '.join(shown(v) for v in vals)} not "
                             "found; its options are not imported", line=wline)
            else:
                _read_config(draft, path, collected, step, cmd["arch"])
            continue
        opt = inv.get(name)
        got = import_value(draft, opt, name, vals, wline, settings, quiet=quiet)
        if got is not None:
            collected.setdefault(opt.dest, []).append((step, script, got.value, wline, got))


def _accelerate(draft: Draft, launch: list[Val], line: int) -> None:
    """``accelerate launch`` options: those ``[run]`` has go there, others are reported."""

    words: list[str] = []
    for word in launch:
        text = literal(word)
        if text is None:
            draft.report("LRC092", f"accelerate argument {shown(word)} cannot be known "
                         "without running the script", line=line)
            continue
        words.append(text)
    for name, texts in _parse_words(words):
        key = _ACCELERATE.get(name)
        value = (texts or ["true"])[0]
        if key is None:
            draft.unmap(f"accelerate.{name}", value, "LRC090", f"accelerate launch "
                        f"--{name} has no [run] equivalent", line=line, section="run")
            continue
        draft.run[key] = _number(value)


def _dataset_config(draft: Draft, inv: Any, vals: list[Val], line: int, base: Path,
                    settings: Settings, quiet: set[str]) -> None:
    """``--dataset_config`` (the first a script gives; every step reads the same one): the
    file read into ``[dataset]`` when it is found, else kept as the ``dataset_config`` option
    (its path as written, ``${env:…}`` included), which the backend passes to every step."""

    if settings.dataset_config is not None or draft.dataset is not None or \
            "dataset_config" in draft.options:
        return

    def take(texts: list[str]) -> bool:
        return bool(texts) and take_dataset_config(draft, texts[0], line, settings, base,
                                                   load=_dataset)

    got = import_value(draft, inv.get("dataset_config"), "dataset_config", vals, line,
                       settings, take=take, quiet=quiet)
    if got is not None:
        draft.set("dataset_config", got.value, line=line, text=got.text, note=got.note)


def _read_config(draft: Draft, path: Path, collected: _Collected,
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
            collected.setdefault(key, []).append((step, Path(inv.script).name, value, line,
                                                  None))


def _merge(draft: Draft, collected: _Collected,
           fam: knowledge.Family | None) -> None:
    order = {s: i for i, s in enumerate(knowledge.STEPS)}
    for name, uses in collected.items():
        uses = sorted(uses, key=lambda u: -order[u[0]])  # training first
        _, script, value, line, got = uses[0]
        if name == "i2v" and fam is not None and fam.i2v:
            draft.report("LRC095", f"--i2v ({script}) is implied by family {fam.name}",
                         line=line)
            continue
        if fam is not None and fam.variant.get(name) == value:
            continue  # the family sets it
        for _, other_script, other, other_line, _ in uses[1:]:
            if other != value:
                draft.unmap(name, other, "LRC090", f"{name} is {raw_text(other)} for "
                            f"{other_script} but {raw_text(value)} for {script}; a profile "
                            "gives every step one value (kept the latter)", line=other_line)
        opt = _option_anywhere(name)
        if got is not None:  # from a command line: converted and checked already
            draft.set(name, got.value, line=line, text=got.text, note=got.note)
        elif opt is not None:
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

