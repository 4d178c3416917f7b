"""Reading shell launchers without running them: what the shell importers share.

Nothing is executed: a small lexer reads the script the way bash would split it (quotes,
backslash-newline continuations, comments, heredocs skipped, redirections dropped), and an
interpreter follows only what decides the training command:

- assignments ``X=v``, ``export X=v``, ``X+=v``, arrays ``A=(…)`` / ``A+=(…)``;
- expansions ``$X``, ``${X}``, ``${X:-default}``, ``${X-default}``, ``${X:=default}``,
  ``"${A[@]}"``, ``${X:+word}`` / ``${A[@]+"${A[@]}"}`` (the word when set, else nothing);
  unquoted expansions are split into fields like bash does;
- the script's own path and folder: ``$0``, ``${BASH_SOURCE[0]}``, and ``$(dirname …)``,
  ``$(cd … && pwd)``, ``$(realpath …)``, ``$(readlink -f …)`` of them;
- a command built piece by piece in a variable and run as ``$CMD``, ``eval "$CMD"`` or
  ``"${ARGS[@]}"``;
- ``source FILE`` / ``. FILE``: a file that exists (relative to the launcher's folder, else to
  the current one) is read like an ``--env`` file; one that does not is reported once, naming
  the variables the script then reads that nothing sets.

Command substitution (``$(…)``, backticks), arithmetic, positional parameters and other
parameter operators give an *unknown* value: the option it feeds is reported (LRC092) and kept
as a comment. A variable that the script never assigns, or assigns as ``X="${X:-default}"``, or
that an ``--env`` file (or a sourced file) defines, is an environment variable: with
``keep_env`` a string option keeps it as ``${env:X:-default}`` in the profile, other options get
the value and a comment naming the variable (:func:`import_value`).

``--env`` files and sourced files are read with the same lexer and interpreter
(:func:`read_env`), so both shell style (``export X="${X:-0.05}"``) and dotenv style
(``X=0.05``) work. Every variable such a file assigns is an *environment* variable of the
profile: ``X=v`` becomes ``${env:X:-v}`` and ``X="${X:-d}"`` becomes ``${env:X:-d}``.

The importer of each trainer says which commands it wants (``State.is_command``) and reads
their arguments with the entry script's inventory (:func:`parse_args`): flags take no value,
``nargs='*'`` options take values up to the next ``--option``, others take one value
(``--opt=value`` or ``--opt value``); unknown options are reported with a did-you-mean.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorac.core.diagnostics import LoracError, Severity
from lorac.importers import (
    ConversionError,
    Draft,
    Settings,
    Source,
    Value,
    convert,
    looks_placeholder,
    read_source,
)
from lorac.scan.shell import NOT_RUNNING

MAX_EVAL_DEPTH = 8
MAX_NESTING = 64  # ${…} / $(…) inside one another
MAX_VALUE_SEGMENTS = 10_000
MAX_VALUE_CHARS = 1_000_000

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Lit:
    """Literal text, with the file and line it was written at."""

    text: str
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class Env:
    """An environment variable, with the default the script gives it (None: no default)."""

    name: str
    default: tuple[Any, ...] | None
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class Unknown:
    """A value lorac cannot know without running something (``$(date)``, ``$1``, …)."""

    what: str
    path: str = ""
    line: int = 0


Seg = Lit | Env | Unknown
Val = tuple[Seg, ...]


def literal(val: Val) -> str | None:
    """The value's text with environment defaults filled in; None when it cannot be known."""

    out = []
    for seg in val:
        if isinstance(seg, Lit):
            out.append(seg.text)
        elif isinstance(seg, Env):
            if seg.default is None:
                return None
            inner = literal(seg.default)
            if inner is None:
                return None
            out.append(inner)
        else:
            return None
    return "".join(out)


def template(val: Val) -> str | None:
    """The value as profile text: ``${env:NAME:-default}`` for environment variables."""

    out = []
    for seg in val:
        if isinstance(seg, Lit):
            out.append(seg.text.replace("${", "$${"))
        elif isinstance(seg, Env):
            default = literal(seg.default) if seg.default is not None else None
            if default is not None and "}" not in default and "{" not in default:
                out.append(f"${{env:{seg.name}:-{default}}}")
            else:
                out.append(f"${{env:{seg.name}}}")
        else:
            return None
    return "".join(out)


def shown(val: Val) -> str:
    """The value for a message: environment references as ``${X}``, unknowns as written."""

    out = []
    for seg in val:
        if isinstance(seg, Lit):
            out.append(seg.text)
        elif isinstance(seg, Env):
            out.append(f"${{{seg.name}}}")
        else:
            out.append(seg.what)
    return "".join(out)


def env_names(val: Val) -> list[str]:
    names: list[str] = []
    for seg in val:
        if isinstance(seg, Env) and seg.name not in names:
            names.append(seg.name)
    return names


def unknowns(val: Val) -> list[Unknown]:
    out: list[Unknown] = []
    for seg in val:
        if isinstance(seg, Unknown):
            out.append(seg)
        elif isinstance(seg, Env) and seg.default is not None:
            out.extend(unknowns(seg.default))
    return out


def where(val: Val) -> tuple[str, int]:
    """The file and line of the first written piece of ``val``."""

    for seg in val:
        if seg.line:
            return seg.path, seg.line
    return "", 0


def _join(val: Val) -> Val:
    """Merge adjacent literal pieces (keeping the first one's position)."""

    out: list[Seg] = []
    for seg in val:
        if isinstance(seg, Lit) and out and isinstance(out[-1], Lit):
            prev = out[-1]
            out[-1] = Lit(prev.text + seg.text, prev.path or seg.path, prev.line or seg.line)
        elif not (isinstance(seg, Lit) and not seg.text):
            out.append(seg)
    if len(out) > MAX_VALUE_SEGMENTS or sum(
            len(s.text) for s in out if isinstance(s, Lit)) > MAX_VALUE_CHARS:
        raise LoracError("a shell value grows past 10000 pieces or 1 MB; refusing to "
                         "follow it")
    return tuple(out)


# --------------------------------------------------------------------------- the lexer

# Word pieces (unexpanded): ("lit", text, quoted) | ("var", name, op, arg_pieces, quoted)
# | ("unknown", text, quoted) | ("array", name, quoted)


@dataclass
class Word:
    pieces: list[tuple] = field(default_factory=list)
    line: int = 0

    def plain(self) -> str | None:
        """The word's text when it is only literal pieces."""

        if all(p[0] == "lit" for p in self.pieces):
            return "".join(p[1] for p in self.pieces)
        return None


@dataclass
class Assign:
    name: str
    append: bool
    value: Word | None
    array: list[Word] | None
    line: int


@dataclass
class Command:
    line: int
    assigns: list[Assign] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?)=")
_DECLARE = {"export", "local", "declare", "readonly", "typeset"}


class Lexer:
    """Split shell text into simple commands of unexpanded words."""

    def __init__(self, text: str, path: str, draft: Draft, first_line: int = 1) -> None:
        self.text = text
        self.path = path
        self.draft = draft
        self.pos = 0
        self.line = first_line
        self.heredocs: list[tuple[str, bool]] = []

    # -- helpers
    def _peek(self, n: int = 0) -> str:
        i = self.pos + n
        return self.text[i] if i < len(self.text) else ""

    def _advance(self, n: int = 1) -> str:
        chunk = self.text[self.pos:self.pos + n]
        self.line += chunk.count("\n")
        self.pos += n
        return chunk

    def _note(self, message: str, line: int | None = None) -> None:
        self.draft.report("LRC096", message, line=line or self.line, severity=Severity.INFO,
                          path=self.path)

    def commands(self) -> Iterator[Command]:
        while self.pos < len(self.text):
            cmd = self._command()
            if cmd is not None and (cmd.words or cmd.assigns):
                yield cmd

    # -- one simple command
    def _command(self) -> Command | None:
        cmd = Command(self.line)
        declaring = False
        while self.pos < len(self.text):
            c = self._peek()
            if c in " \t\r":
                self._advance()
                continue
            if c == "\\" and self._peek(1) == "\n":
                self._advance(2)
                continue
            if c == "#":
                while self.pos < len(self.text) and self._peek() != "\n":
                    self._advance()
                continue
            if c == "\n":
                self._advance()
                self._skip_heredocs()
                return cmd
            if c in ";&|":
                self._advance()
                if self._peek() == c:
                    self._advance()
                return cmd
            if c in "()":
                self._advance()
                if c == "(" and self._peek() == "(":
                    self._skip_balanced("((", "))")
                return cmd
            if c in "<>":
                self._redirect(cmd)
                continue
            if not cmd.words or declaring:
                m = _ASSIGN.match(self.text, self.pos)
                if m:
                    cmd.assigns.append(self._assignment(m))
                    continue
            word = self._word()
            if word is None:
                continue
            if (word.pieces and word.pieces[-1][0] == "lit" and not word.pieces[-1][2]
                    and self._peek() in ("<", ">") and (word.plain() or "").isdigit()):
                continue  # the "2" of 2>&1
            cmd.words.append(word)
            declaring = (len(cmd.words) == 1 and word.plain() in _DECLARE) or (
                declaring and (word.plain() or "").startswith("-"))
        return cmd

    def _assignment(self, m: re.Match) -> Assign:
        line = self.line
        self._advance(m.end() - self.pos)
        if self._peek() == "(":
            self._advance()
            items: list[Word] = []
            while self.pos < len(self.text):
                c = self._peek()
                if c in " \t\r\n":
                    self._advance()
                elif c == "\\" and self._peek(1) == "\n":
                    self._advance(2)
                elif c == "#":
                    while self.pos < len(self.text) and self._peek() != "\n":
                        self._advance()
                elif c == ")":
                    self._advance()
                    break
                else:
                    w = self._word(in_array=True)
                    if w is not None:
                        items.append(w)
            else:
                self._note("array assignment is not closed with ')'", line)
            return Assign(m.group(1), bool(m.group(2)), None, items, line)
        value = self._word(allow_empty=True)
        return Assign(m.group(1), bool(m.group(2)), value, None, line)

    def _redirect(self, cmd: Command) -> None:
        if self.text.startswith("<<<", self.pos):
            self._advance(3)
            self._skip_space()
            self._word()
            return
        if self.text.startswith("<<", self.pos):
            self._advance(2)
            strip = self._peek() == "-"
            if strip:
                self._advance()
            self._skip_space()
            word = self._word()
            delim = "".join(p[1] for p in word.pieces if p[0] == "lit") if word else ""
            if delim:
                self.heredocs.append((delim, strip))
                self._note(f"heredoc <<{delim} is skipped (its text is not read)")
            return
        while self._peek() in ("<", ">", "&"):
            self._advance()
        if self._peek() == "(":  # process substitution <(…)
            self._skip_balanced("(", ")")
            return
        self._skip_space()
        self._word()

    def _skip_space(self) -> None:
        while self._peek() in (" ", "\t"):
            self._advance()

    def _skip_heredocs(self) -> None:
        while self.heredocs:
            delim, strip = self.heredocs.pop(0)
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end
                line = self.text[self.pos:end]
                self._advance(end - self.pos + (1 if end < len(self.text) else 0))
                if (line.lstrip("\t") if strip else line) == delim:
                    break
            else:
                self._note(f"heredoc <<{delim} is not closed")

    def _skip_balanced(self, opener: str, closer: str) -> str:
        """Skip from just after ``opener`` to the matching ``closer``; return the text."""

        start = self.pos
        depth = 1
        quote = ""
        while self.pos < len(self.text):
            c = self._peek()
            if quote:
                if c == "\\" and quote == '"':
                    self._advance(2)
                    continue
                if c == quote:
                    quote = ""
                self._advance()
                continue
            if c in "'\"`":
                quote = c
            elif c == "\\":
                self._advance(2)
                continue
            elif self.text.startswith(closer, self.pos):
                depth -= 1
                if depth == 0:
                    body = self.text[start:self.pos]
                    self._advance(len(closer))
                    return body
            elif self.text.startswith(opener, self.pos) or (c == "(" and closer == ")"):
                depth += 1
                if depth > MAX_NESTING:  # each level is read again: keep it linear
                    raise LoracError(f"{self.path}:{self.line}: {opener}…{closer} nested more "
                                     f"than {MAX_NESTING} deep; refusing to follow it")
            self._advance()
        self._note(f"{opener!r} is not closed")
        return self.text[start:]

    # -- words
    def _word(self, allow_empty: bool = False, in_array: bool = False) -> Word | None:
        word = Word(line=self.line)
        started = False
        stops = " \t\r\n;&|()<>" if not in_array else " \t\r\n)"
        while self.pos < len(self.text):
            c = self._peek()
            if c in stops:
                break
            if c == "\\" and self.pos + 1 >= len(self.text):
                self._advance()  # a continuation at the end of the file continues nothing
                continue
            started = True
            if c == "\\":
                if self._peek(1) == "\n":
                    self._advance(2)
                    continue
                self._advance()
                word.pieces.append(("lit", self._advance() if self.pos < len(self.text)
                                    else "", True))
            elif c == "'":
                self._advance()
                word.pieces.append(("lit", self._single_quoted(report=True), True))
            elif c == '"':
                self._advance()
                word.pieces.extend(self._double_quoted())
            elif c == "$":
                word.pieces.append(self._dollar(quoted=False))
            elif c == "`":
                self._advance()
                body = self._backtick()
                word.pieces.append(("unknown", f"`{body}`", False))
            else:
                start = self.pos
                while self.pos < len(self.text) and self._peek() not in stops + "\\'\"$`":
                    self._advance()
                word.pieces.append(("lit", self.text[start:self.pos], False))
        if not started and not allow_empty:
            if self.pos < len(self.text) and self._peek() not in stops:
                self._advance()
            return None
        return word

    def _single_quoted(self, report: bool = False) -> str:
        """The text up to the closing ``'`` (the opening one already read); both are consumed.
        An unterminated quote runs to the end of the text (and is reported with ``report``)."""

        end = self.text.find("'", self.pos)
        if end < 0:
            if report:
                self.draft.report("LRC096", "unterminated single quote", line=self.line,
                                  path=self.path)
            end = len(self.text)
        text = self._advance(end - self.pos)
        self._advance()
        return text

    def _backtick(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self._peek() != "`":
            if self._peek() == "\\":
                self._advance()
            self._advance()
        body = self.text[start:self.pos]
        if self.pos >= len(self.text):
            self.draft.report("LRC096", "unterminated backtick", line=self.line,
                              path=self.path)
        self._advance()
        return body

    def _double_quoted(self) -> list[tuple]:
        pieces: list[tuple] = []
        buf: list[str] = []

        def flush() -> None:
            if buf:
                pieces.append(("lit", "".join(buf), True))
                buf.clear()

        while True:
            if self.pos >= len(self.text):
                self.draft.report("LRC096", "unterminated double quote", line=self.line,
                                  path=self.path)
                break
            c = self._peek()
            if c == '"':
                self._advance()
                break
            if c == "\\" and self._peek(1) in '$`"\\\n':
                self._advance()
                ch = self._advance()
                if ch != "\n":
                    buf.append(ch)
            elif c == "$":
                flush()
                pieces.append(self._dollar(quoted=True))
            elif c == "`":
                flush()
                self._advance()
                pieces.append(("unknown", f"`{self._backtick()}`", True))
            else:
                buf.append(self._advance())
        flush()
        if not pieces:
            pieces.append(("lit", "", True))
        return pieces

    def _dollar(self, quoted: bool) -> tuple:
        self._advance()  # $
        c = self._peek()
        if c == "(":
            self._advance()
            if self._peek() == "(":
                self._advance()
                body = self._skip_balanced("((", "))")
                return ("unknown", f"$(({body}))", quoted)
            body = self._skip_balanced("(", ")")
            return ("unknown", f"$({body})", quoted)
        if c == "{":
            self._advance()
            body = self._skip_balanced("{", "}")
            return self._brace(body, quoted)
        if c == "'" and not quoted:  # $'…' ANSI-C quoting, read as single-quoted
            self._advance()
            return ("lit", self._single_quoted(), True)
        m = _NAME.match(self.text, self.pos)
        if m:
            self._advance(m.end() - self.pos)
            return ("var", m.group(0), "", None, quoted)
        if c and c in "0123456789@*#?$!-":
            self._advance()
            return ("unknown", f"${c}", quoted)
        return ("lit", "$", quoted)

    def _brace(self, body: str, quoted: bool) -> tuple:
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\[([@*])\]", body)
        if m:
            return ("array", m.group(1), quoted)
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[@*]\])?(:?)\+(.*)", body, re.S)
        if m:  # ${X:+word}, ${A[@]+"${A[@]}"}: the word when X is set, else nothing
            sub = Lexer(m.group(3), self.path, self.draft, self.line)
            return ("alt", m.group(1), m.group(2), sub._default_pieces(split=not quoted),
                    quoted)
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=])(.*))?", body, re.S)
        if m:
            arg = None
            if m.group(2):
                sub = Lexer(m.group(3), self.path, self.draft, self.line)
                arg = sub._default_pieces()
            return ("var", m.group(1), m.group(2) or "", arg, quoted)
        m = re.fullmatch(r"([0-9]+):?-(.*)", body, re.S)
        if m:  # ${1:-flux_train_network}: an argument of the script, with its default
            sub = Lexer(m.group(2), self.path, self.draft, self.line)
            return ("positional", f"${{{body}}}", sub._default_pieces(), quoted)
        return ("unknown", f"${{{body}}}", quoted)

    def _default_pieces(self, split: bool = False) -> list[tuple]:
        """The word of a ``${X:-word}`` default (quotes removed, expansions kept); with
        ``split`` its unquoted text is split into fields as bash does for an unquoted
        ``${X:+word}``."""

        word = Word(line=self.line)
        while self.pos < len(self.text):
            c = self._peek()
            if c == "'":
                self._advance()
                word.pieces.append(("lit", self._single_quoted(), True))
            elif c == '"':
                self._advance()
                word.pieces.extend(self._double_quoted())
            elif c == "$":
                word.pieces.append(self._dollar(quoted=not split))
            elif c == "\\":
                self._advance()
                word.pieces.append(("lit", self._advance(), True))
            else:
                word.pieces.append(("lit", self._advance(), not split))
        return word.pieces


# --------------------------------------------------------------------------- the interpreter


@dataclass
class Defined:
    """A variable's value and where it was set (``env`` for --env files)."""

    value: Val | list[Val]
    path: str
    line: int
    from_env_file: bool = False


@dataclass
class State:
    """Variables known so far, and what happened while reading."""

    vars: dict[str, Defined] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    commands: list[tuple[list[Val], int, str]] = field(default_factory=list)
    env_file: bool = False
    env_files: set[str] = field(default_factory=set)
    noted_branches: bool = False  # the "every branch is followed" note was given
    #: which commands the importer wants (``fields`` of one simple command → True)
    is_command: Callable[[list[Val]], bool] = field(default=lambda fields: False)
    #: variables read with no value and no default, in the order first read
    unset: dict[str, None] = field(default_factory=dict)
    #: ``source`` lines whose file was not found
    missing: list[MissingSource] = field(default_factory=list)
    #: the files ``source`` followed (resolved paths), so that none is read twice in a chain
    sourced: list[str] = field(default_factory=list)


@dataclass
class MissingSource:
    """A ``source FILE`` that was not followed: where, what it names, and how many variables
    without a value had been read before it (those read after it are the ones it may set)."""

    text: str
    tried: str | None
    path: str
    line: int
    unset_before: int

    def stays_unset(self, state: State) -> list[str]:
        """The variables the script reads after this line that nothing sets."""

        return list(state.unset)[self.unset_before:]


class Interpreter:
    """Follow assignments and find the training command, executing nothing."""

    def __init__(self, draft: Draft, state: State, path: str,
                 script: str | None = None) -> None:
        self.draft = draft
        self.state = state
        self.path = path
        self.script = script  # the script's absolute path: what $0 and ${BASH_SOURCE[0]} hold

    def run(self, text: str) -> None:
        text = text.replace("\r\n", "\n")  # saved on Windows: backslash-CRLF continues too
        for cmd in Lexer(text, self.path, self.draft).commands():
            self.execute(cmd, 0)

    # -- expansion
    def lookup(self, name: str) -> Val | None:
        self.state.used.add(name)
        found = self.state.vars.get(name)
        if found is None:
            return None
        if isinstance(found.value, list):
            return found.value[0] if found.value else ()
        return found.value

    def expand_piece(self, piece: tuple, line: int) -> list[Val] | Val:
        kind = piece[0]
        if kind == "lit":
            return (Lit(piece[1], self.path, line),)
        if kind == "unknown":
            known = self.script_path(piece[1], line)
            if known is not None:
                return (Lit(known, self.path, line),)
            return (Unknown(piece[1], self.path, line),)
        if kind == "alt":
            found = self.state.vars.get(piece[1])
            self.state.used.add(piece[1])
            value = found.value if found is not None else None
            if value is None or value == [] or (piece[2] and isinstance(value, tuple)
                                                and literal(value) == ""):
                return []
            words: list[Word] = [Word(line=line)]
            for sub in piece[3]:  # unquoted blanks of an unquoted ${X:+word} split it
                if sub[0] == "lit" and not sub[-1] and sub[1] in " \t\n":
                    words.append(Word(line=line))
                else:
                    words[-1].pieces.append(sub)
            return [f for w in words if w.pieces for f in self.expand_word(w)]
        if kind == "positional":
            value = self.expand_joined(piece[2], line)
            self.draft.report("LRC095", f"{piece[1]} (an argument of the script) is read as "
                              f"its default {shown(value)!r}", line=line, path=self.path,
                              severity=Severity.INFO)
            return value
        if kind == "array":
            self.state.used.add(piece[1])
            found = self.state.vars.get(piece[1])
            if found is None:
                return []
            return list(found.value) if isinstance(found.value, list) else [found.value]
        _, name, op, arg, _ = piece
        value = self.lookup(name)
        if value is not None:
            if op.startswith(":") and literal(value) == "" and arg is not None:
                value = None
            else:
                return value
        if arg is None:
            self.state.unset.setdefault(name)
            return (Env(name, None, self.path, line),)
        default = self.expand_joined(arg, line)
        if op.endswith("=") and name not in self.state.vars:
            self.state.vars[name] = Defined(default, self.path, line)
        return (Env(name, default, self.path, line),)

    def script_path(self, text: str, line: int) -> str | None:
        """The path that ``text`` gives when it only names the script or its folder:
        ``$0``, ``${BASH_SOURCE[0]}``, ``$(dirname …)``, ``$(cd … && pwd)``,
        ``$(realpath …)``, ``$(readlink -f …)`` of such a value (or of a variable holding
        one: ``REPO_DIR="$(dirname "$SCRIPT_DIR")"``). None for anything else."""

        if self.script is None:
            return None
        if text in ("$0", "${0}", "${BASH_SOURCE[0]}", "${BASH_SOURCE}"):
            return self.script
        m = _PATH_SUBST.fullmatch(text)
        if m is None:
            return None
        inner = Lexer(m.group("word"), self.path, self.draft, line)._default_pieces()
        value = literal(self.expand_joined(inner, line))
        if not value or "\n" in value:
            return None
        if m.group("op") == "dirname":
            return posixpath.dirname(value.rstrip("/")) or "."
        return posixpath.normpath(value)

    def expand_joined(self, pieces: list[tuple], line: int) -> Val:
        """Expand pieces into one value (no field splitting)."""

        out: list[Seg] = []
        for piece in pieces:
            got = self.expand_piece(piece, line)
            if isinstance(got, list):
                for i, item in enumerate(got):
                    if i:
                        out.append(Lit(" ", self.path, line))
                    out.extend(item)
            else:
                out.extend(got)
        return _join(tuple(out))

    def expand_word(self, word: Word) -> list[Val]:
        """Expand one word into fields, splitting unquoted expansions like bash."""

        fields: list[list[Seg]] = [[]]
        keep = [False]
        for piece in word.pieces:
            quoted = piece[-1] if piece[0] != "var" else piece[4]
            got = self.expand_piece(piece, word.line)
            if isinstance(got, list):  # "${A[@]}": one field per element
                for i, item in enumerate(got):
                    if i:
                        fields.append([])
                        keep.append(True)
                    fields[-1].extend(item)
                    keep[-1] = True
                continue
            if piece[0] == "lit" or quoted:
                fields[-1].extend(got)
                keep[-1] = keep[-1] or quoted or bool(piece[1])
                continue
            for seg in got:
                if not isinstance(seg, Lit):
                    fields[-1].append(seg)
                    keep[-1] = True
                    continue
                parts = re.split(r"[ \t\n]+", seg.text)
                for i, part in enumerate(parts):
                    if i:
                        fields.append([])
                        keep.append(False)
                    if part:
                        fields[-1].append(Lit(part, seg.path, seg.line))
                        keep[-1] = True
        return [_join(tuple(f)) for f, k in zip(fields, keep, strict=True) if k]

    # -- commands
    def execute(self, cmd: Command, depth: int) -> None:
        declare = cmd.words and cmd.words[0].plain() in _DECLARE
        if not cmd.words or declare:
            for a in cmd.assigns:
                self.assign(a)
            return
        for a in cmd.assigns:  # VAR=x cmd: kept, as the command sees it
            self.assign(a)
        fields: list[Val] = []
        for word in cmd.words:
            fields.extend(self.expand_word(word))
        self.fields(fields, cmd.line, depth)

    def fields(self, fields: list[Val], line: int, depth: int) -> None:
        while fields:
            head = literal(fields[0])
            if head in ("then", "else", "do", "{", "!", "if", "elif", "while", "until",
                        "time", "exec", "nohup", "command", "env", "sudo"):
                if head in ("if", "elif", "while", "until", "else") and \
                        not self.state.noted_branches:
                    self.state.noted_branches = True
                    self.draft.report("LRC096", "conditionals and loops are read straight "
                                      "through: every branch is followed in order",
                                      line=line, severity=Severity.INFO, path=self.path)
                fields = fields[1:]
                continue
            if head and _ASSIGN.match(head) and len(fields) > 1:  # env X=1 cmd
                fields = fields[1:]
                continue
            break
        if not fields:
            return
        head = literal(fields[0]) or ""
        if head in ("source", "."):
            self.source(fields[1:], line)
            return
        if head == "eval":
            if depth >= MAX_EVAL_DEPTH:
                self.draft.report("LRC096", "eval nested too deeply; not followed", line=line,
                                  path=self.path)
                return
            joined: list[Seg] = []
            for i, f in enumerate(fields[1:]):
                if i:
                    joined.append(Lit(" ", self.path, line))
                joined.extend(f)
            for words, wline in split_eval(tuple(joined), line):
                self.fields(words, wline, depth + 1)
            return
        if head in NOT_RUNNING:
            return  # [ -f "$SD/flux_train_network.py" ] names the script, it runs nothing
        if self.state.is_command(fields):
            self.state.commands.append((fields, line, self.path))

    def source(self, args: list[Val], line: int) -> None:
        """``source FILE``: read FILE like an ``--env`` file when it exists (relative to the
        folder of the file being read, else to the current folder), else remember it for
        :func:`report_missing_sources`. A file given with ``--env`` is not read again."""

        text = shown(args[0]) if args else "?"
        name = re.split(r"[/\\]", text)[-1]
        if name in self.state.env_files:
            return
        wanted = literal(args[0]) if args else None
        found = None
        if wanted:
            here = Path(self.script).parent if self.script else None
            candidate = Path(wanted)
            for path in ([candidate] if candidate.is_absolute() else
                         [*([here / candidate] if here else []), candidate]):
                if path.is_file():
                    found = path
                    break
        if found is None:
            self.state.missing.append(MissingSource(text, wanted, self.path, line,
                                                    len(self.state.unset)))
            return
        resolved = str(found.resolve())
        if resolved in self.state.sourced or len(self.state.sourced) >= MAX_EVAL_DEPTH:
            self.draft.report("LRC096", f"`source {text}`: sourced files nest too deep or in a "
                              "loop; not followed", line=line, path=self.path)
            return
        self.state.sourced.append(resolved)
        try:
            read_env(found, self.draft, self.state, script=resolved)
        finally:
            self.state.sourced.pop()

    def assign(self, a: Assign) -> None:
        if a.array is not None:
            items: list[Val] = []
            for w in a.array:
                items.extend(self.expand_word(w))
            old = self.state.vars.get(a.name)
            if a.append and old is not None:
                base = old.value if isinstance(old.value, list) else [old.value]
                items = [*base, *items]
            self.state.vars[a.name] = Defined(items, self.path, a.line, self.state.env_file)
            return
        value = self.expand_joined(a.value.pieces, a.line) if a.value else ()
        if a.append:
            old = self.state.vars.get(a.name)
            if old is not None:
                if isinstance(old.value, list):
                    self.state.vars[a.name] = Defined([*old.value, value], self.path, a.line,
                                                      self.state.env_file)
                    return
                value = _join(old.value + value)
        if self.state.env_file and not _self_default(value, a.name):
            value = (Env(a.name, value, self.path, a.line),)
        self.state.vars[a.name] = Defined(value, self.path, a.line, self.state.env_file)


#: ``$(dirname W)``, ``$(cd W && pwd)``, ``$(cd W; pwd -P)``, ``$(realpath W)``,
#: ``$(readlink -f W)``: the path functions that locate a script's own folder
_PATH_SUBST = re.compile(
    r"\$\(\s*(?:(?P<op>dirname)|cd|realpath|readlink\s+-[fe])\s+(?P<word>(?:[^\s;&|()`]|\$\([^()]*"
    r"(?:\([^()]*\)[^()]*)*\)|\$\{[^}]*\}|\"[^\"]*(?:\$\([^()]*\)[^\"]*)*\")+)"
    r"(?(op)|\s*(?:(?:&&|;)\s*pwd(?:\s+-P)?)?)\s*\)", re.S)


_POSITIONAL = re.compile(r"\$(?:[1-9]|\{[1-9][0-9]*\}|[@*])")


def _self_default(value: Val, name: str) -> bool:
    return len(value) == 1 and isinstance(value[0], Env) and value[0].name == name


def split_eval(val: Val, line: int) -> list[tuple[list[Val], int]]:
    """Split the text ``eval`` runs into commands of fields: quotes removed, pieces kept."""

    commands: list[tuple[list[Val], int]] = []
    words: list[Val] = []
    current: list[Seg] = []
    started = False
    quote = ""

    def end_word() -> None:
        nonlocal current, started
        if started:
            words.append(_join(tuple(current)))
        current, started = [], False

    def end_command() -> None:
        nonlocal words
        end_word()
        if words:
            commands.append((words, where(tuple(s for w in words for s in w))[1] or line))
        words = []

    for seg in val:
        if not isinstance(seg, Lit):
            current.append(seg)
            started = True
            continue
        text, i = seg.text, 0
        buf: list[str] = []

        def flush(seg: Lit = seg, buf: list[str] = buf) -> None:
            if buf:
                current.append(Lit("".join(buf), seg.path, seg.line))
                buf.clear()

        while i < len(text):
            c = text[i]
            if quote == "'":
                if c == "'":
                    quote = ""
                else:
                    buf.append(c)
            elif quote == '"':
                if c == '"':
                    quote = ""
                elif c == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\':
                    i += 1
                    buf.append(text[i])
                else:
                    buf.append(c)
            elif c in "'\"":
                quote = c
                started = True
            elif c == "\\" and i + 1 < len(text):
                i += 1
                if text[i] != "\n":
                    buf.append(text[i])
                    started = True
            elif c in " \t\n":
                flush()
                end_word()
            elif c in ";&|":
                flush()
                end_command()
            else:
                buf.append(c)
                started = True
            i += 1
        flush()
    end_command()
    return commands



def read_env(path: Path, draft: Draft, state: State, *, script: str | None = None) -> None:
    """Add the variables that the env file at ``path`` assigns to ``state``; ``script`` is
    the file's absolute path when ``$0`` / ``${BASH_SOURCE[0]}`` in it should name it (a
    sourced file).

    Findings (unterminated quotes, command substitutions) go to ``draft``.
    """

    source = read_source(path)
    before, state.env_file = state.env_file, True
    try:
        Interpreter(draft, state, source.display, script).run(source.text)
    finally:
        state.env_file = before


def parse_args(draft: Draft, args: list[Val], inventory: Any, line: int,
               script: str | None = None) -> list[tuple[str, list[Val], int]]:
    """Split the script's arguments into ``(dest, values, line)`` with the inventory
    (``script``: the script's name in messages, else the inventory's)."""

    script = script or inventory.script
    out: list[tuple[str, list[Val], int]] = []
    i = 0
    while i < len(args):
        val = args[i]
        _, wline = where(val)
        wline = wline or line
        first = val[0] if val else None
        if not (isinstance(first, Lit) and first.text.startswith("--")):
            text = shown(val)
            draft.unmap(f"argument {i + 1}", text, "LRC093", f"unexpected argument {text!r} "
                        f"(not an --option of {script})", line=wline)
            i += 1
            continue
        name, eq, rest = first.text[2:].partition("=")
        inline: list[Val] = []
        if eq:
            inline = [_join((Lit(rest, first.path, first.line), *val[1:]))]
        elif len(val) > 1:
            draft.unmap(first.text, shown(val), "LRC092", f"option name "
                        f"{first.text}… is built from a variable", line=wline)
            i += 1
            continue
        option = inventory.get(f"--{name}") or _abbreviation(inventory, name)
        i += 1
        if option is None:
            values = inline
            while not eq and i < len(args) and not _is_option(args[i]):
                values.append(args[i])
                i += 1
            close = inventory.closest(name, n=1)
            text = " ".join(shown(v) for v in values)
            draft.unmap(name, text if values else "true", "LRC093",
                        f"--{name} is not an option of {script}", line=wline,
                        hint=f"did you mean --{close[0]}?" if close else None)
            continue
        if option.dest != name and f"--{name}" not in option.flags:
            draft.report("LRC095", f"--{name} is read by argparse as the abbreviation of "
                         f"{option.flags[0]}", line=wline, severity=Severity.WARNING)
        values = inline
        if not eq and not option.is_flag:
            if option.is_list:
                while i < len(args) and not _is_option(args[i]):
                    values.append(args[i])
                    i += 1
            elif i < len(args) and not _is_option(args[i]):
                values.append(args[i])
                i += 1
        out.append((option.dest, values, wline))
    return out


def _abbreviation(inventory: Any, name: str) -> Any:
    hits = {o.dest: o for o in inventory.options.values()
            if any(f.startswith(f"--{name}") for f in o.flags)}
    return next(iter(hits.values())) if len(hits) == 1 and name else None


def _is_option(val: Val) -> bool:
    return bool(val) and isinstance(val[0], Lit) and val[0].text.startswith("--")


def import_value(draft: Draft, option: Any, name: str, vals: list[Val], line: int,
                 settings: Settings, *, take: Callable[[list[str]], bool] | None = None,
                 quiet: Collection[str] = ()) -> Value | None:
    """The profile value of ``--name vals`` (``option`` from the script's inventory), or None
    when it was reported and kept as a comment.

    A value that comes from something lorac does not run (``$(…)``, ``$1``) is unknown
    (LRC092). One that reads an environment variable without a default is kept, with
    ``keep_env``, as ``${env:NAME}`` in a string option — the profile needs the variable when
    it is resolved, which a warning says (a note for the variables in ``quiet``, those a
    report of a missing sourced file already names) — and is unknown otherwise. A known value
    is converted to the option's type; with ``keep_env`` a string option that read the
    environment keeps the reference as its text (``${env:NAME:-default}``), other options get
    a comment naming the variables. ``take(texts)`` may claim the known texts first
    (``dataset_config``: the file is read into ``[dataset]``).
    """

    text = " ".join(shown(v) for v in vals)
    unknown = [u for v in vals for u in unknowns(v)]
    if unknown:
        what = ", ".join(dict.fromkeys(u.what for u in unknown))
        known_when = ("an argument the script is given when it runs"
                      if all(_POSITIONAL.fullmatch(u.what) for u in unknown)
                      else "which lorac does not run")
        draft.unmap(name, text, "LRC092", f"--{name} comes from {what}, {known_when}",
                    line=line, hint="write the value in the profile")
        return None
    texts = [literal(v) for v in vals]
    names = [n for v in vals for n in env_names(v)]
    if any(t is None for t in texts):
        unset = next(n for v, t in zip(vals, texts, strict=True) if t is None
                     for n in _unset_names(v))
        if settings.keep_env and option.type in ("str", "path") and not option.is_list and \
                len(vals) == 1:
            draft.report("LRC095", f"--{name} reads ${unset}, which has no default; the "
                         "profile needs it set when it is resolved", line=line,
                         severity=Severity.INFO if unset in quiet else Severity.WARNING)
            return Value(template(vals[0]), line)
        draft.unmap(name, text, "LRC092", f"--{name} reads ${unset}, which has no "
                    "default", line=line, hint=f"export {unset}=… or pass --env FILE")
        return None
    if take is not None and take(texts):  # type: ignore[arg-type]
        return None
    try:
        value = convert(option, texts)  # type: ignore[arg-type]
    except ConversionError as exc:
        draft.unmap(name, text, "LRC091", f"--{name}: {exc}", line=line)
        return None
    if looks_placeholder(value):
        draft.report("LRC094", f"--{name} is a placeholder ({value}); set the real value",
                     line=line)
    shown_text = note = None
    if names:
        if settings.keep_env and option.type in ("str", "path") and len(vals) == 1:
            shown_text = template(vals[0])
        else:
            note = "from " + ", ".join(f"${n}" for n in names)
    return Value(value, line, shown_text, note)


def _unset_names(val: Val) -> list[str]:
    """The environment variables of ``val`` that have no default (the reason it is unknown)."""

    out = []
    for seg in val:
        if isinstance(seg, Env):
            if seg.default is None:
                out.append(seg.name)
            else:
                out.extend(_unset_names(seg.default))
    return out


def interpret(source: Source, settings: Settings, draft: Draft,
              is_command: Callable[[list[Val]], bool],
              run: Callable[[Interpreter], None] | None = None) -> State:
    """Read ``settings.env_files``, then follow ``source`` (with ``run``, or as a bash script),
    collecting the commands ``is_command`` wants; returns the state. Variables the env files
    define and the script never reads are reported, and so is each sourced file that was not
    found (:func:`report_missing_sources`)."""

    state = State(is_command=is_command)
    for env_path in settings.env_files:
        read_env(env_path, draft, state)
        state.env_files.add(env_path.name)
    env_defined = {name: d for name, d in state.vars.items() if d.from_env_file}
    state.used.clear()
    state.unset.clear()
    script = str(source.path.resolve()) if source.path.is_file() else None
    if script:
        state.sourced.append(script)
    interp = Interpreter(draft, state, source.display, script)
    try:
        if run is not None:
            run(interp)
        else:
            interp.run(source.text)
    except RecursionError:
        raise LoracError(f"{source.display}: substitutions nested too deeply to follow "
                         "($(…) or ${…} inside one another)") from None
    for name, d in sorted(env_defined.items()):
        if name not in state.used:
            draft.report("LRC095", f"{name} is defined here but the training script never "
                         "reads it", line=d.line, path=d.path, severity=Severity.WARNING)
    report_missing_sources(draft, state)
    draft.credentials |= credentials(state)
    return state


def report_missing_sources(draft: Draft, state: State) -> None:
    """One finding per ``source FILE`` that was not found, naming the variables the script
    then reads that nothing sets: a warning when there are some (the profile keeps them as
    ``${env:NAME}``, to be set when it is resolved), a note when there are none."""

    for miss in state.missing:
        unset = [f"${n}" for n in dict.fromkeys(re.findall(r"\$\{([A-Za-z_]\w*)\}", miss.text))
                 if n in state.unset]
        why = ("no such file" if miss.tried is not None else
               f"its path reads {', '.join(unset)}, which nothing sets" if unset else
               "its path is known only when the script runs")
        names = miss.stays_unset(state)
        if not names:
            draft.report("LRC095", f"`source {miss.text}` is not followed ({why}); the script "
                         "reads no variable that it might set", line=miss.line,
                         path=miss.path, severity=Severity.INFO)
            continue
        draft.report("LRC095", f"`source {miss.text}` is not followed ({why}): "
                     f"{', '.join(names)} stay unresolved (kept as ${{env:NAME}}, to be set "
                     "when the profile is resolved)", line=miss.line, path=miss.path,
                     severity=Severity.WARNING, hint="pass the file with --env to read its "
                     "variables")


def explained(state: State) -> set[str]:
    """The variables a report of a missing sourced file names (:func:`import_value`'s
    ``quiet``)."""

    return {n for miss in state.missing for n in miss.stays_unset(state)}


def credentials(state: State) -> set[str]:
    """The values of the variables whose names read like credentials (``WANDB_API_KEY=…`` in
    the script or an ``--env`` file): kept out of every option, whichever variable carries
    them there."""

    from lorac.core.secrets import looks_secret_name

    out: set[str] = set()
    for name, defined in state.vars.items():
        if not looks_secret_name(name):
            continue
        for val in defined.value if isinstance(defined.value, list) else [defined.value]:
            text = literal(val)
            if text:
                out.add(text)
    return out
