"""A small, read-only scanner of shell scripts and env files for the lint rules.

Nothing is executed. The scanner understands what the variable, documentation and hygiene rules
need, with the line and column of each piece:

* assignments (``export X=…``, ``X=${X:-default}``, ``local X=…``, assignments in ``case``
  branches and after ``;``),
* references (``$X``, ``${X}``, ``${X:-default}``, nested defaults, inside double quotes and
  unquoted here-documents; not inside single quotes or comments),
* ``source`` / ``.`` of other files,
* trainer invocations: a command naming a kohya entry script (``flux_train_network.py``) and
  its ``--option[=value]`` words, whether written on one (continued) command line or built
  piece by piece in a variable (``CMD="${CMD} --network_dim=${RANK}"`` or ``CMD+=" …"``).
"""

from __future__ import annotations

import bisect
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN_WORD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\+?)=(.*)$", re.S)
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "(",
             "((", "[[", "exec", "nohup", "env", "command"}
_DECLARE = {"export", "local", "readonly", "declare", "typeset"}
_TRAINER = re.compile(r"(?:^|/)([A-Za-z0-9_]+\.py)$")
_OPTION = re.compile(r"^--([A-Za-z][A-Za-z0-9_-]*)(?:=(.*))?$", re.S)
MAX_BYTES = 2 * 1024 * 1024

#: Commands that name a file without running it: ``[ ! -f "$SD/flux_train_network.py" ]``,
#: ``test -f …``, ``ls``, ``cp`` … A trainer script among their words is no invocation.
NOT_RUNNING = frozenset({
    "[", "[[", "test", "echo", "printf", "ls", "cat", "cp", "mv", "rm", "ln", "cd", "pushd",
    "mkdir", "touch", "chmod", "chown", "stat", "wget", "curl", "git", "head", "tail", "grep",
    "sed", "awk", "realpath", "readlink", "dirname", "basename", "file", "du", "wc", "find",
    "which", "type", "sha256sum", "md5sum", "tee", "diff", "less", "more", "vi", "vim", "nano",
    "open", "dos2unix", "rsync", "scp", "tar", "unzip", "zip", "huggingface-cli", "hf",
})


@dataclass(frozen=True)
class Ref:
    """A ``$NAME`` / ``${NAME…}`` reference; ``default`` is the ``:-`` fallback text."""

    name: str
    default: str | None
    line: int
    col: int


@dataclass(frozen=True)
class Assignment:
    """``NAME=value`` (``value`` unquoted). ``fallback`` is ``(OTHER, default)`` when the whole
    value is ``${OTHER:-default}``."""

    name: str
    value: str
    line: int
    col: int
    exported: bool = False
    append: bool = False
    fallback: tuple[str, str] | None = None

    @property
    def literal(self) -> str | None:
        """The value when it contains no expansion at all."""

        return None if ("$" in self.value or "`" in self.value) else self.value


@dataclass(frozen=True)
class ScriptOption:
    """One ``--option`` of a trainer invocation; ``raw`` is None for a bare flag."""

    name: str
    raw: str | None
    line: int
    col: int


@dataclass(frozen=True)
class Invocation:
    """A trainer command: the entry script's name and where it is written, and its options."""

    trainer: str
    line: int
    col: int
    options: tuple[ScriptOption, ...]

    def option(self, name: str) -> ScriptOption | None:
        found = [o for o in self.options if o.name == name]
        return found[-1] if found else None


@dataclass
class ShellScan:
    """Everything :func:`scan` found in one file."""

    path: str
    assignments: list[Assignment] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    sources: list[tuple[str, int]] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)


# --------------------------------------------------------------------------- low level


def _refs_in(text: str, line_of, base: int) -> list[Ref]:
    """References in ``text`` (a piece of the file starting at offset ``base``)."""

    out: list[Ref] = []
    i = 0
    n = len(text)
    quote = ""
    while i < n:
        c = text[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if c in "'\"" and quote in ("", c):
            quote = "" if quote else c
            i += 1
            continue
        if quote == "'" or c != "$":
            i += 1
            continue
        if text.startswith("${", i):
            end = _match_brace(text, i + 1)
            body = text[i + 2:end]
            m = re.match(r"[#!]?([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?(:?[-=+?])?", body)
            if m:
                default = body[m.end():] if m.group(2) in (":-", "-", ":=", "=") else None
                line, col = line_of(base + i)
                out.append(Ref(m.group(1), default, line, col))
                if m.group(2):
                    out += _refs_in(body[m.end():], line_of, base + i + 2 + m.end())
            i = end + 1
            continue
        m = NAME.match(text, i + 1)
        if m:
            line, col = line_of(base + i)
            out.append(Ref(m.group(0), None, line, col))
            i = m.end()
            continue
        i += 1
    return out


def _match_brace(text: str, open_at: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_at`` (or the end of the text)."""

    depth = 0
    i = open_at
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text) - 1


def _strip_comment(text: str) -> str:
    """``text`` without a trailing comment (``#`` starting a word, outside quotes)."""

    quote = ""
    depth = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "$" and i + 1 < len(text) and text[i + 1] in "{(":
            depth += 1
        elif c in "})" and depth:
            depth -= 1
        elif c == "#" and depth == 0 and (i == 0 or text[i - 1] in " \t;"):
            return text[:i]
        i += 1
    return text


def split_words(text: str) -> list[list[tuple[str, int]]]:
    """Split one logical line into statements of words, each word with its offset.

    Quotes, ``$(…)``, ``${…}`` and backticks keep their content in one word; ``;``, ``|``,
    ``&`` (and ``;;``) end a statement.
    """

    statements: list[list[tuple[str, int]]] = [[]]
    word: list[str] = []
    start = -1
    quote = ""
    depth = 0
    i = 0

    def end_word() -> None:
        nonlocal word, start
        if word:
            statements[-1].append(("".join(word), start))
        word, start = [], -1

    while i < len(text):
        c = text[i]
        if start < 0 and c not in " \t\r\n;|&":
            start = i
        if c == "\\" and quote != "'":
            word.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            word.append(c)
            if c == quote:
                quote = ""
            elif c == "$" and quote == '"' and text[i + 1:i + 2] in ("(", "{"):
                word.append(text[i + 1])
                depth += 1
                i += 1
            elif c in ")}" and depth and quote == '"':
                depth -= 1
            i += 1
            continue
        if depth:
            word.append(c)
            if c in "({":
                depth += 1
            elif c in ")}":
                depth -= 1
            elif c in "'\"":
                quote = c
            i += 1
            continue
        if c in "'\"`":
            quote = c if c != "`" else "`"
            word.append(c)
        elif c == "$" and text[i + 1:i + 2] in ("(", "{"):
            word.append(text[i:i + 2])
            depth += 1
            i += 2
            continue
        elif c in " \t\r\n":
            end_word()
        elif c in ";|&":
            end_word()
            if statements[-1]:
                statements.append([])
        else:
            word.append(c)
        i += 1
    end_word()
    return [s for s in statements if s]


def unquote(word: str) -> tuple[str, int]:
    """The word without its quote characters, and the offset of its first content character."""

    out: list[str] = []
    quote = ""
    lead = 0
    i = 0
    while i < len(word):
        c = word[i]
        if c == "\\" and quote != "'" and i + 1 < len(word):
            out.append(word[i + 1] if quote == "" or word[i + 1] in '"\\$`' else word[i:i + 2])
            i += 2
            continue
        if quote and c == quote:
            quote = ""
        elif not quote and c in "'\"":
            quote = c
            if not out:
                lead = i + 1
        else:
            out.append(c)
        i += 1
    return "".join(out), lead


def _fallback(value: str) -> tuple[str, str] | None:
    m = re.match(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):?[-=]", value)
    if m and _match_brace(value, 1) == len(value) - 1:
        return m.group(1), value[m.end():-1]
    return None


# --------------------------------------------------------------------------- the scanner


@lru_cache(maxsize=1)
def _trainer_names() -> frozenset[str]:
    try:
        from lorac.config.inventory import kohya_scripts

        return frozenset(kohya_scripts())
    except (OSError, ValueError, KeyError):
        return frozenset()


def _is_flag(trainer: str, name: str) -> bool | None:
    try:
        from lorac.config.inventory import load_kohya_inventory

        option = load_kohya_inventory(trainer).get(name)
    except (OSError, ValueError, KeyError):
        return None
    return None if option is None else option.is_flag


def _options(words: list[tuple[str, int]], trainer: str, at) -> list[ScriptOption]:
    """``--name[=value]`` words (``--name value`` when the option takes a value)."""

    out: list[ScriptOption] = []
    i = 0
    while i < len(words):
        text, offset = words[i]
        plain, _ = unquote(text)
        m = _OPTION.match(plain)
        i += 1
        if not m:
            continue
        line, col = at(offset)
        name, raw = m.group(1).replace("-", "_"), m.group(2)
        if raw is None and i < len(words) and _is_flag(trainer, name) is False:
            nxt, _ = unquote(words[i][0])
            if not nxt.startswith("--"):
                raw = nxt
                i += 1
        out.append(ScriptOption(name, raw, line, col))
    return out


def scan(text: str, path: str = "<text>") -> ShellScan:
    """Scan shell text (see the module docstring)."""

    result = ShellScan(path)
    text = text.replace("\r\n", "\n")  # a launcher saved on Windows continues lines alike
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(line_starts, offset) - 1
        return index + 1, offset - line_starts[index] + 1

    physical = text.split("\n")
    builders: dict[str, tuple[str, int, int, list[ScriptOption]]] = {}
    i = 0
    while i < len(physical):
        start_line = i
        logical = physical[i]
        offsets = [0]
        heredoc = None
        while logical.endswith("\\") and i + 1 < len(physical):
            i += 1
            logical = logical[:-1] + " " + physical[i]
            offsets.append(len(logical) - len(physical[i]))
        mapping = [(o, line_starts[start_line + k]) for k, o in enumerate(offsets)]

        def at(offset: int, mapping=mapping) -> tuple[int, int]:
            base = max((m for m in mapping if m[0] <= offset), key=lambda m: m[0])
            return line_of(base[1] + offset - base[0])

        code = _strip_comment(logical)
        m = _HEREDOC.search(code)
        if m:
            heredoc = (m.group(2), bool(m.group(1)))
        result.refs += _refs_in(code, at, 0)
        for statement in split_words(code):
            _statement(statement, at, result, builders)
        i += 1
        if heredoc:
            delimiter, quoted = heredoc
            while i < len(physical) and physical[i].strip() != delimiter:
                if not quoted:
                    result.refs += _refs_in(physical[i], line_of, line_starts[i])
                i += 1
            i += 1
    for trainer, line, col, options in builders.values():
        result.invocations.append(Invocation(trainer, line, col, tuple(options)))
    result.invocations.sort(key=lambda v: (v.line, v.col))
    return result


def _trainer_in(word: str, result: ShellScan) -> re.Match | None:
    """The entry script ``word`` names, also when a variable the file set earlier builds it
    (``"./sd-scripts/$train_script.py"`` after ``train_script=flux_train_network``)."""

    text = unquote(word)[0]
    found = _TRAINER.search(text)
    if found is None and "$" in text and _MAY_NAME_SCRIPT.search(text):
        value = evaluate(text, definitions([result]))
        found = _TRAINER.search(value) if value else None
    return found


#: A word whose expansion may end in ``….py``: ``$SD/$train_script.py``, ``"$SCRIPT"``,
#: ``${SD}/${TRAINER}`` (the last piece is a variable named like a script or trainer).
_MAY_NAME_SCRIPT = re.compile(r"\.py$|\$\{?[A-Za-z0-9_]*(?i:script|train|trainer|entry)"
                              r"[A-Za-z0-9_]*\}?$")


def _statement(words: list[tuple[str, int]], at, result: ShellScan,
               builders: dict[str, tuple[str, int, int, list[ScriptOption]]]) -> None:
    k = 0
    exported = False
    while k < len(words):
        word = words[k][0]
        if word == "[[":
            return  # a test names files, it runs nothing
        if word in _KEYWORDS or (word.endswith(")") and "(" not in word and "=" not in word):
            k += 1
            continue
        if word in _DECLARE:
            exported = exported or word == "export"
            k += 1
            while k < len(words) and words[k][0].startswith("-"):
                k += 1
            continue
        break
    names = _trainer_names()
    while k < len(words):
        word, offset = words[k]
        m = _ASSIGN_WORD.match(word)
        if not m:
            break
        name, append, raw = m.group(1), bool(m.group(2)), m.group(3)
        value, lead = unquote(raw)
        line, col = at(offset)
        result.assignments.append(Assignment(name, value, line, col, exported, append,
                                             _fallback(value)))
        value_offset = offset + m.start(3) + lead
        inner = split_words(value)
        flat = [(w, value_offset + o) for st in inner for (w, o) in st]
        continued = append or (bool(flat) and flat[0][0] in (f"${name}", f"${{{name}}}"))
        if name in builders and continued:
            trainer = builders[name][0]
            builders[name][3].extend(_options(flat, trainer, at))
        else:
            for j, (w, o) in enumerate(flat):
                tm = _trainer_in(w, result)
                if tm and tm.group(1) in names:
                    tl, tc = at(o)
                    builders[name] = (tm.group(1), tl, tc, _options(flat[j + 1:], tm.group(1),
                                                                     at))
                    break
            else:
                if name in builders and not continued:
                    builders.pop(name)
        k += 1
    rest = words[k:]
    if not rest:
        return
    command = unquote(rest[0][0])[0]
    if command in ("source", ".") and len(rest) > 1:
        result.sources.append((unquote(rest[1][0])[0], at(rest[1][1])[0]))
        return
    if command in NOT_RUNNING:
        return
    for j, (w, o) in enumerate(rest):
        tm = _trainer_in(w, result)
        if tm and tm.group(1) in names:
            line, col = at(o)
            result.invocations.append(Invocation(
                tm.group(1), line, col, tuple(_options(rest[j + 1:], tm.group(1), at))))
            return


def scan_file(path: Path, display: str | None = None) -> ShellScan:
    """Scan the file at ``path``; an unreadable or binary file scans as empty."""

    shown = display or str(path)
    try:
        st = path.stat()
        if st.st_size > MAX_BYTES or not stat.S_ISREG(st.st_mode):
            return ShellScan(shown)
        data = path.read_bytes()
    except (OSError, ValueError):
        return ShellScan(shown)
    if b"\x00" in data:
        return ShellScan(shown)
    return scan(data.decode("utf-8", errors="replace"), shown)


# --------------------------------------------------------------------------- evaluation


def evaluate(text: str, values: Mapping[str, str]) -> str | None:
    """Expand ``$X`` / ``${X}`` / ``${X:-d}`` in ``text`` with ``values``; None when a
    variable is unknown and has no default, or the text has a command substitution."""

    if "$(" in text or "`" in text:
        return None
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if text.startswith("${", i):
            end = _match_brace(text, i + 1)
            body = text[i + 2:end]
            m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-=])?", body)
            if not m:
                return None
            if m.group(1) in values and (values[m.group(1)] or not m.group(2)):
                out.append(values[m.group(1)])
            elif m.group(2):
                sub = evaluate(body[m.end():], values)
                if sub is None:
                    return None
                out.append(sub)
            else:
                return None
            i = end + 1
            continue
        m = NAME.match(text, i + 1)
        if not m:
            out.append(c)
            i += 1
            continue
        if m.group(0) not in values:
            return None
        out.append(values[m.group(0)])
        i = m.end()
    return "".join(out)


def definitions(scans: Iterable[ShellScan]) -> dict[str, str]:
    """Values of the variables the files assign, in order, as a shell would leave them
    (the process environment is ignored: lint results must not depend on it). The first
    assignment of a name wins over later branches of the same file."""

    values: dict[str, str] = {}
    for sc in scans:
        seen: set[str] = set()
        for a in sc.assignments:
            if a.append or a.name in seen:
                continue
            value = evaluate(a.value, values)
            if value is not None:
                values[a.name] = value
                seen.add(a.name)
    return values


def sourced_env_files(sc: ShellScan, env_files: Mapping[str, ShellScan]) -> list[ShellScan]:
    """The env files (display path → scan) that ``sc`` sources, matched by path suffix; every
    env file when a ``source`` cannot be matched; none when the script sources nothing."""

    out: list[ShellScan] = []
    for target, _line in sc.sources:
        tail = re.sub(r"^.*[}\)]", "", target).lstrip("/")
        tail = tail.removeprefix("./")
        matches = [s for p, s in env_files.items()
                   if tail and (p == tail or p.endswith("/" + tail))]
        if not matches:
            name = Path(target).name
            matches = [s for p, s in env_files.items() if Path(p).name == name]
        out += [m for m in (matches or env_files.values()) if m not in out]
    return out


def source_closure(scans: Mapping[str, ShellScan]) -> dict[str, set[str]]:
    """Display path → every scanned file it sources, directly or through others (a
    ``source`` is matched by path suffix, else by file name; one that matches nothing links
    to nothing)."""

    direct: dict[str, set[str]] = {}
    for path, sc in scans.items():
        for target, _line in sc.sources:
            tail = re.sub(r"^.*[}\)]", "", target).lstrip("/").removeprefix("./")
            found = {p for p in scans if tail and (p == tail or p.endswith("/" + tail))}
            if not found:
                name = Path(target).name
                found = {p for p in scans if name and Path(p).name == name}
            direct.setdefault(path, set()).update(found - {path})
    out: dict[str, set[str]] = {}
    for path in scans:
        seen: set[str] = set()
        todo = list(direct.get(path, ()))
        while todo:
            nxt = todo.pop()
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(direct.get(nxt, ()))
        out[path] = seen - {path}
    return out
