"""LRC7xx — credentials written into the linted tree, or carried into compiled files.

Both rules scan the text of every profile and of every project file of kind env, shell,
YAML, JSON and TOML (``ProjectContext.files``), comments included, with
:func:`lorac.core.secrets.scan`. A message names the kind and at most a fingerprint (first four
characters and length); it never prints the secret.
"""

from __future__ import annotations

from collections.abc import Iterator

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.core.secrets import Secret, fingerprint, looks_secret_name, looks_secret_value, scan
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, ProjectContext, Rule
from lorac.lint.rules.hygiene import texts


def _scanned(ctx: ProjectContext) -> list[tuple[str, str, list[Secret]]]:
    """``(display path, text, secrets)`` per file that has any, computed once per lint run
    from :func:`~lorac.lint.rules.hygiene.texts` (unreadable or over-size files read as "":
    the loading stage reports them)."""

    def compute() -> list[tuple[str, str, list[Secret]]]:
        found = ((path, text, scan(text)) for path, text in texts(ctx).items())
        return [entry for entry in found if entry[2]]

    return ctx.memo("lorac.core.secrets.scanned", compute)


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


class SecretInTrainerOption(Rule):
    """What it does
    Reports a trainer option whose resolved value is a credential: an option named like one
    (sd-scripts' ``huggingface_token``, ``wandb_api_key``) with any value, or any option whose
    value holds a recognisable token (``hf_…``, ``AKIA…``), wherever the value came from — a
    ``${env:…}`` reference, a ``[vars]`` entry or a base profile. Literals that LRC701/LRC702
    already report where they are written are not reported again.

    Why is this bad?
    Trainer options are compiled into files: ``config.toml`` or the command line in
    ``train.sh``, copied into every run folder and often committed or shared with the run.
    A token that the profile took from the environment is written down there in clear.
    sd-scripts needs neither option: ``huggingface_hub`` reads ``HF_TOKEN`` and ``wandb``
    reads ``WANDB_API_KEY`` from the trainer's environment, which ``[run.env]`` sets without
    writing the value into any compiled file (``train.sh`` requires it from the environment).

    Example
        [logging]
        wandb_api_key = "${env:WANDB_API_KEY}"

    Use instead
        [run.env]
        WANDB_API_KEY = "${env:WANDB_API_KEY}"

    Fix safety
    No fix: moving the value changes where the trainer reads it from.
    """

    code = "LRC703"
    name = "secret-in-trainer-option"
    severity = Severity.ERROR
    groups = ("secrets",)

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        profile = ctx.profile
        for name, (value, kp) in profile.options().items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                if not isinstance(item, str) or not item or "${" in item:  # unresolved
                    continue
                tokens = [item[s.start:s.end] for s in scan(item) if not s.name]
                if not tokens and not looks_secret_name(name):
                    continue
                where = profile.where(kp)
                if where.kind == "file" and (tokens or looks_secret_value(item)):
                    continue  # LRC701/LRC702 report it where it is written
                shown = fingerprint(tokens[0] if tokens else item)
                source = {"env": f"from ${{env:{where.detail}}}",
                          "env-default": "from an environment default",
                          "var": f"from [vars] {where.detail}".rstrip()}.get(where.kind,
                                                                            "written here")
                yield self.at(profile, kp,
                              f"trainer option {name} holds a credential ({shown}, {source}); "
                              "the compiled config and every run folder would carry it",
                              hint="remove it and set the variable the library reads in "
                              '[run.env] instead, e.g. HF_TOKEN = "${env:HF_TOKEN}" or '
                              'WANDB_API_KEY = "${env:WANDB_API_KEY}"')
                break


RULES = (HardcodedToken, SecretLikeValue, SecretInTrainerOption)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC7xx secret rules."""

    return [cls() for cls in RULES]
