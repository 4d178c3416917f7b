"""LRC7xx — credentials written into the linted tree.

Both rules scan the text of every profile and of every project file of kind env, shell,
YAML, JSON and TOML (``ProjectContext.files``), comments included, with
:func:`lorac.secrets.scan`. A message names the kind and at most a fingerprint (first four
characters and length); it never prints the secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lorac.diagnostics import Diagnostic, Severity
from lorac.hookspecs import hookimpl
from lorac.profile import display_path
from lorac.rules import ProjectContext, Rule
from lorac.secrets import Secret, fingerprint, scan

KINDS = ("profile", "env", "shell", "yaml", "json", "toml")


def _scanned(ctx: ProjectContext) -> list[tuple[str, str, list[Secret]]]:
    """``(display path, text, secrets)`` per file, computed once per lint run."""

    if "secrets" not in ctx.cache:
        out = []
        for kind in KINDS:
            for path in ctx.files.get(kind, []):
                try:
                    text = Path(path).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue  # unreadable files are reported by the loading stage
                found = scan(text)
                if found:
                    out.append((display_path(Path(path)), text, found))
        ctx.cache["secrets"] = out
    return ctx.cache["secrets"]


class _SecretRule(Rule):
    scope = "project"
    groups = ("secrets",)
    named: bool

    def check(self, ctx: ProjectContext) -> Iterator[Diagnostic]:
        for path, text, found in _scanned(ctx):
            for s in found:
                if bool(s.name) != self.named:
                    continue
                what = f"a {s.kind}" if not s.name else f"a literal credential in {s.name}"
                yield self.in_file(
                    path, s.line, s.col,
                    f"{what} is written in the file ({fingerprint(text[s.start:s.end])})",
                    hint="read it from the environment (${env:NAME} in a profile, $NAME in a "
                    "script), keep it out of the repository, and revoke the exposed one")


class HardcodedToken(_SecretRule):
    """What it does
    Reports a credential recognisable by its format — Hugging Face ``hf_…``, GitHub
    ``ghp_…``/``github_pat_…``, AWS ``AKIA…``, OpenAI ``sk-…``, Slack ``xox?-…``, GitLab
    ``glpat-…``, Google ``AIza…``, Replicate ``r8_…``, a PEM private key — anywhere in a
    profile, env file, shell script, YAML, JSON or TOML file of the linted tree.

    Why is this bad?
    A training repository is copied to pods, pushed, and shared; a token in it is a token
    published. The audit found R2 keys written into ``download_models.sh`` and
    ``sync_models_r2.sh``. The message shows only the kind, the first four characters and the
    length.

    Example
        export HF_TOKEN=hf_…            # the real token, in scripts/download_models.sh

    Use instead
        : "${HF_TOKEN:?set HF_TOKEN}"   # and in a profile: "${env:HF_TOKEN}"

    Fix safety
    No fix: the token must be revoked, and where it should come from is a decision.
    """

    code = "LRC701"
    name = "hardcoded-token"
    named = False


class SecretLikeValue(_SecretRule):
    """What it does
    Reports a literal, high-entropy value (16+ characters mixing letters and digits, not a
    ``$VAR``/``${…}`` reference, path, URL or placeholder) assigned to a name that reads like a
    credential: ``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*``, ``api_key``, ``access_key``, … — in
    ``NAME=value``, ``name = "value"``, ``"name": "value"`` and ``--name value`` forms.

    Why is this bad?
    Credentials without a recognisable prefix — Cloudflare R2 / S3 secret keys, W&B API keys —
    leak the same way (the audit's R2 keys). ``max_token_length`` or ``class_tokens`` are not
    credential names; ``*token`` counts only as the last word.

    Example
        R2_SECRET_ACCESS_KEY="3f9a…"     # 64 hex characters

    Use instead
        R2_SECRET_ACCESS_KEY="${R2_SECRET_ACCESS_KEY:?set it in the pod's environment}"

    Fix safety
    No fix.
    """

    code = "LRC702"
    name = "secret-like-value"
    named = True
    severity = Severity.ERROR


RULES = (HardcodedToken, SecretLikeValue)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC7xx secret rules."""

    return [cls() for cls in RULES]
