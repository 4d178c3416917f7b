"""Read ``--env`` files for the shell importer.

An env file is read with the shell importer's lexer and interpreter (nothing is executed), so
both shell style (``export X="${X:-0.05}"``) and dotenv style (``X=0.05``) work. Every variable
it assigns is an *environment* variable of the profile: ``X=v`` becomes ``${env:X:-v}`` and
``X="${X:-d}"`` becomes ``${env:X:-d}``.
"""

from __future__ import annotations

from pathlib import Path

from lorac.importers import Draft, read_source
from lorac.importers.shell import Interpreter, State


def read_env(path: Path, draft: Draft, state: State) -> None:
    """Add the variables that the env file at ``path`` assigns to ``state``.

    Findings (unterminated quotes, command substitutions) go to ``draft``.
    """

    source = read_source(path)
    state.env_file = True
    try:
        Interpreter(draft, state, source.display).run(source.text)
    finally:
        state.env_file = False
