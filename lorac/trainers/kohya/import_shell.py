"""Import a shell script (or one command line) that runs ``*_train_network.py``.

The script is read without running it by :mod:`lorac.importers.shell` (the lexer and
interpreter every shell importer shares: assignments, expansions, ``eval``, commands built in
variables, sourced files, ``--env`` files), which collects the commands that run a
``*_train_network.py`` script; Windows ``.bat``/``.cmd`` files are read by
:class:`BatchReader` into the same interpreter. The first training command is imported: its
arguments are parsed with the entry script's inventory (:func:`lorac.importers.shell.parse_args`)
and each value becomes a profile value by the shared rules
(:func:`lorac.importers.shell.import_value`): unknown values are reported (LRC092) and kept as
comments, environment variables are kept as ``${env:X:-default}`` with ``keep_env``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import LoracError, Severity
from lorac.importers import (
    Draft,
    Settings,
    Source,
    check_model_agrees,
    find_relative,
    flux_family,
    import_options,
    inventory_for,
    parse_toml,
    read_source,
    script_families,
    take_dataset_config,
)
from lorac.importers.shell import (
    Defined,
    Env,
    Interpreter,
    Lit,
    Seg,
    Unknown,
    Val,
    _join,
    explained,
    import_value,
    interpret,
    literal,
    parse_args,
    shown,
)

BATCH_SUFFIXES = (".bat", ".cmd")


def _script_of(val: Val) -> str | None:
    """``flux_train_network`` when ``val`` names a ``*train_network.py`` script."""

    last = ""
    for seg in reversed(val):
        if isinstance(seg, Lit):
            last = seg.text
            break
        return None
    m = re.search(r"(?:^|[/\\])([A-Za-z0-9_]*train_network)\.py$", last)
    return m.group(1) if m else None


# --------------------------------------------------------------------------- the command


_RUN_KEYS = {"num_processes": "gpus", "num_machines": "num_machines",
             "machine_rank": "machine_rank", "main_process_ip": "main_process_ip",
             "main_process_port": "main_process_port", "mixed_precision": "mixed_precision",
             "num_cpu_threads_per_process": "num_cpu_threads_per_process"}
_RUN_INTS = {"gpus", "num_machines", "machine_rank", "main_process_port",
             "num_cpu_threads_per_process"}


def read(source: Source, settings: Settings) -> Draft:
    """Read ``source`` as a shell script (or command line) and import its training command."""

    draft = Draft(kind="shell", source=source.display)
    batch = source.path.suffix.lower() in BATCH_SUFFIXES
    state = interpret(source, settings, draft, lambda fields: any(_script_of(f) for f in fields),
                      (lambda interp: BatchReader(interp, source).run(source.text))
                      if batch else None)
    if not state.commands:
        raise LoracError(f"{source.display}: no command running *_train_network.py was found "
                         "(looked for accelerate launch / python … *_train_network.py)")
    if len(state.commands) > 1:
        lines = ", ".join(f"{p}:{ln}" for _, ln, p in state.commands[1:])
        draft.report("LRC095", f"{len(state.commands)} training commands found; importing the "
                     f"first (others at {lines})", line=state.commands[0][1],
                     severity=Severity.WARNING)
    fields, line, _ = state.commands[0]
    _command(draft, fields, line, source, settings, explained(state))
    return draft


def _command(draft: Draft, fields: list[Val], line: int, source: Source,
             settings: Settings, quiet: Collection[str] = ()) -> None:
    index, script = next((i, s) for i, f in enumerate(fields) if (s := _script_of(f)))
    launcher, args = fields[:index], fields[index + 1:]
    family = settings.family
    if family is None:
        family = script_families().get(script)
        if family is None:
            family = "sd15"
            draft.report("LRC095", f"{script}.py is not a script lorac knows; reading its "
                         "options as train_network.py's", line=line, severity=Severity.WARNING)
    inventory = inventory_for(family)
    if f"{script}.py" != inventory.script and script in script_families():
        draft.report("LRC095", f"--family {family} trains with {inventory.script}, but the "
                     f"script runs {script}.py", line=line, severity=Severity.WARNING)
    _launcher(draft, launcher, line)
    parsed = parse_args(draft, args, inventory, line)
    base = source.path.parent
    config = next((p for p in parsed if p[0] == "config_file"), None)
    if config is not None:
        _config_file(draft, config, inventory, base, settings)
    for name, vals, wline in parsed:
        _set_option(draft, inventory, name, vals, wline, base, settings, quiet)
    model = draft.options.get("pretrained_model_name_or_path")
    if settings.family is None and family.startswith("flux1") and model:
        family = flux_family(str(model.value))
    model_type = draft.options.get("model_type")
    if settings.family is None and family.startswith("flux1") and model_type is not None \
            and model_type.value == "chroma":
        family = "chroma"  # flux_train_network.py --model_type chroma
    draft.family = family
    module = draft.options.get("network_module")
    check_model_agrees(draft, family, model.value if model else None,
                       module.value if module else None, script=f"{script}.py", line=line)


def _launcher(draft: Draft, words: list[Val], line: int) -> None:
    texts = [literal(w) for w in words]
    if "launch" not in texts:
        return
    rest = words[texts.index("launch") + 1:]
    extra: list[str] = []
    i = 0
    while i < len(rest):
        text = literal(rest[i])
        if text is None:
            draft.report("LRC092", f"accelerate argument {shown(rest[i])} cannot be "
                         "known without running the script", line=line)
            i += 1
            continue
        name, _, value = text.partition("=")
        key = _RUN_KEYS.get(name.lstrip("-")) if name.startswith("--") else None
        if key is None:
            extra.append(text)
            i += 1
            continue
        if not _:
            value = literal(rest[i + 1]) if i + 1 < len(rest) else None
            i += 1
        i += 1
        if value is None:
            draft.report("LRC092", f"accelerate {name} has no known value", line=line)
            continue
        if key in _RUN_INTS:
            try:
                draft.run[key] = int(value)
            except ValueError:
                draft.unmap(f"accelerate {name}", value, "LRC091", f"accelerate {name}: "
                            f"{value!r} is not an integer", line=line, section="run")
                continue
        else:
            draft.run[key] = value
    if extra:
        draft.run["accelerate_args"] = extra




def _set_option(draft: Draft, inventory: Any, name: str, vals: list[Val], line: int,
                base: Path, settings: Settings, quiet: Collection[str] = ()) -> None:
    if name == "config_file" or (name == "dataset_config" and
                                 settings.dataset_config is not None):
        return

    def take(texts: list[str]) -> bool:
        return name == "dataset_config" and bool(texts) and take_dataset_config(
            draft, texts[0], line, settings, base, Path.cwd())

    got = import_value(draft, inventory.get(name), name, vals, line, settings, take=take,
                       quiet=quiet)
    if got is not None:
        draft.set(name, got.value, line=line, text=got.text, note=got.note)


def _config_file(draft: Draft, config: tuple[str, list[Val], int], inventory: Any,
                 base: Path, settings: Settings) -> None:
    from lorac.trainers.kohya.import_toml import config_file_choice, flatten

    _, vals, line = config
    name = literal(vals[0]) if len(vals) == 1 else None
    found = find_relative(name, base, Path.cwd()) if name else None
    if found is None:
        draft.report("LRC095", f"--config_file {name or '?'} not found; its options are not "
                     "imported", line=line, severity=Severity.WARNING)
        return
    doc = parse_toml(read_source(found))
    first = len(draft.diagnostics)
    import_options(draft, flatten(doc), inventory, found.parent, settings,
                   unchecked=config_file_choice)
    # what it says of the TOML's lines is said of the TOML, not of the script
    draft.diagnostics[first:] = [replace(d, path=str(found)) if d.path == draft.source and
                                 d.line else d for d in draft.diagnostics[first:]]


# --------------------------------------------------------------------------- Windows batch

_BAT_VAR = re.compile(r"%%|%~[a-z]*\d|%\d|%([A-Za-z_][A-Za-z0-9_.\-]*)(:[^%]*)?%")
_BAT_DELAYED = re.compile(r"!([A-Za-z_][A-Za-z0-9_.\-]*)(:[^!]*)?!")
_BAT_SKIP = re.compile(r"(?i)^(rem(\s|$)|::|:[A-Za-z_])")
_BAT_SET = re.compile(r"(?i)^set(?=[\s\"/])\s*(/[ap]\s+)?(.*)$", re.S)


def batch_lines(text: str) -> Iterator[tuple[str, int, int | None]]:
    """The logical lines of a ``.bat``/``.cmd`` file: ``(text, first line, line of a caret
    that ends in a space)``. A ``^`` at the end of a line joins the next one, as cmd.exe
    does; ``^`` followed by spaces escapes the space and continues nothing (cmd.exe runs the
    next line as a command of its own), which the caller reports."""

    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        first = i + 1
        logical = lines[i]
        while logical.endswith("^") and not _escaped_caret(logical) and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + lines[i]
        spaced = re.search(r"\^[ \t]+$", logical) and not _escaped_caret(logical.rstrip(" \t"))
        yield logical, first, (i + 1 if spaced else None)
        i += 1


def _escaped_caret(text: str) -> bool:
    """True when the last ``^`` of ``text`` is itself escaped (``^^``), or quoted."""

    run = len(text) - len(text.rstrip("^"))
    return run % 2 == 0 or text[:-run].count('"') % 2 == 1


class BatchReader:
    """Follow a Windows batch file: ``set VAR=value`` / ``set "VAR=value"``, ``%VAR%`` (and
    ``!VAR!`` under ``setlocal enabledelayedexpansion``) replaced in the text of each line
    before it is split into words, as cmd.exe does; ``REM`` and ``::`` comments and labels
    skipped; ``if``/``call``/``start`` and parentheses read past to the command they run."""

    def __init__(self, interp: Interpreter, source: Source) -> None:
        self.interp = interp
        self.state = interp.state
        self.path = interp.path
        self.here = source.path.parent
        self.delayed = False

    def run(self, text: str) -> None:
        for logical, line, spaced in batch_lines(text):
            if spaced:
                self.interp.draft.report(
                    "LRC096", f"line {spaced} ends with '^' and a space: cmd.exe continues "
                    "no line there, so the next line runs as a command of its own",
                    line=spaced, path=self.path, severity=Severity.WARNING)
            self.line(logical, line)

    def line(self, text: str, line: int) -> None:
        text = text.strip().lstrip("@").strip()
        while True:  # "(", ") else (", "if …", "call", "start" in front of the command
            if not text or _BAT_SKIP.match(text):
                return
            low = text.lower()
            if text[0] in "()":
                text = text[1:].strip()
            elif low.startswith("else") and (len(low) == 4 or low[4] in " (\t"):
                text = text[4:].strip()
            elif re.match(r"if\s", low):
                text = self._after_condition(text[2:].strip())
            elif re.match(r"call\s", low):
                text = text[4:].strip()
            elif re.match(r"start\s", low):
                text = re.sub(r'^start\s+("[^"]*"\s+)?((/\w+)\s+)*', "", text, flags=re.I)
            else:
                break
        if re.match(r"(?i)setlocal\b", text):
            self.delayed = self.delayed or "enabledelayedexpansion" in text.lower()
            return
        m = _BAT_SET.match(text)
        if m:
            self._set(m.group(1), m.group(2), line)
            return
        fields = self._words(self._expand(text, line), line)
        if fields:
            self.interp.fields(fields, line, 0)

    @staticmethod
    def _after_condition(text: str) -> str:
        """The command of ``if [/i] [not] (exist X | defined X | errorlevel N | A==B) cmd``."""

        words = re.match(r'(?i)((/i|not)\s+)*', text)
        text = text[words.end():] if words else text
        m = re.match(r'(?i)(exist|defined|errorlevel|cmdextversion)\s+("[^"]*"|\S+)\s*', text)
        if m:
            return text[m.end():]
        m = re.match(r'("[^"]*"|[^\s=]+)\s*(==|\s(equ|neq|lss|leq|gtr|geq)\s)\s*'
                     r'("[^"]*"|\S+)\s*', text, re.I)
        return text[m.end():] if m else ""

    def _set(self, switch: str | None, rest: str, line: int) -> None:
        rest = rest.strip()
        if rest.startswith('"'):
            end = rest.rfind('"')
            rest = rest[1:end] if end > 0 else rest[1:]
        name, eq, value = rest.partition("=")
        name = name.strip()
        if not eq or not name:
            return  # `set` alone lists the environment; `set X` shows X
        if switch:
            val: Val = (Unknown(f"set {switch.strip()} {name}", self.path, line),)
        else:
            val = _join(tuple(self._expand(value, line)))
        self.state.vars[name] = Defined(val, self.path, line, self.state.env_file)

    def _expand(self, text: str, line: int) -> list[Seg]:
        """``text`` with ``%VAR%`` (and ``!VAR!``) replaced: known variables by their value,
        others by an environment reference."""

        out: list[Seg] = []
        pos = 0
        for m in _BAT_VAR.finditer(text):
            out.append(Lit(text[pos:m.start()], self.path, line))
            pos = m.end()
            token = m.group(0)
            if token == "%%":
                out.append(Lit("%", self.path, line))
            elif token.lower() in ("%~dp0", "%~p0"):
                out.append(Lit("", self.path, line))  # the batch file's folder: a relative path
            elif m.group(1) is None or m.group(2):
                out.append(Unknown(token, self.path, line))
            else:
                out.extend(self._lookup(m.group(1), line))
        out.append(Lit(text[pos:], self.path, line))
        if not self.delayed:
            return out
        again: list[Seg] = []
        for seg in out:
            if not isinstance(seg, Lit):
                again.append(seg)
                continue
            pos = 0
            for m in _BAT_DELAYED.finditer(seg.text):
                again.append(Lit(seg.text[pos:m.start()], self.path, line))
                pos = m.end()
                again.extend(self._lookup(m.group(1), line) if not m.group(2)
                             else [Unknown(m.group(0), self.path, line)])
            again.append(Lit(seg.text[pos:], self.path, line))
        return again

    def _lookup(self, name: str, line: int) -> list[Seg]:
        found = self.interp.lookup(name)
        if found is None:
            found = next((v for k, v in ((k, self.interp.lookup(k)) for k in self.state.vars
                                         if k.lower() == name.lower()) if v is not None), None)
        if found is None:
            return [Env(name, None, self.path, line)]
        return list(found)

    def _words(self, segs: list[Seg], line: int) -> list[Val]:
        """Split expanded text into arguments the way the C runtime does: spaces end a word
        outside double quotes, the quotes are removed, ``^`` escapes the next character."""

        words: list[Val] = []
        current: list[Seg] = []
        started = False
        quoted = False
        for seg in segs:
            if not isinstance(seg, Lit):
                current.append(seg)
                started = True
                continue
            buf: list[str] = []
            text = seg.text
            i = 0
            while i < len(text):
                c = text[i]
                if c == '"':
                    quoted = not quoted
                    started = True
                elif c == "^" and not quoted and i + 1 < len(text):
                    i += 1
                    buf.append(text[i])
                    started = True
                elif c in " \t" and not quoted:
                    if buf:
                        current.append(Lit("".join(buf), seg.path, seg.line))
                        buf = []
                    if started:
                        words.append(_join(tuple(current)))
                    current, started = [], False
                elif c in "&|" and not quoted:
                    break  # `cmd1 && cmd2`: the rest is another command, not arguments
                elif c in "<>" and not quoted:
                    break
                else:
                    buf.append(c)
                    started = True
                i += 1
            if buf:
                current.append(Lit("".join(buf), seg.path, seg.line))
        if started:
            words.append(_join(tuple(current)))
        return words
