"""LRC3xx: documentation drift — generated blocks that are stale, prose that claims settings
the configuration does not have, docs that present unloaded configs or missing paths, and docs
that tell the reader to set environment variables nothing reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorac.config.document import read_lenient
from lorac.config.profile import Profile, display_path
from lorac.core.diagnostics import Diagnostic, Edit, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProjectContext, Rule
from lorac.lint.rules.hygiene import model
from lorac.lint.rules.variables import readers, runtime_variable

if TYPE_CHECKING:
    from lorac.scan import markdown

#: Human labels → the trainer options they name (a "Rank/Alpha" label names two).
LABELS: dict[str, tuple[str, ...]] = {
    "rank": ("network_dim",), "network rank": ("network_dim",), "dim": ("network_dim",),
    "network dim": ("network_dim",), "alpha": ("network_alpha",),
    "network alpha": ("network_alpha",), "rank/alpha": ("network_dim", "network_alpha"),
    "dim/alpha": ("network_dim", "network_alpha"), "learning rate": ("learning_rate",),
    "lr": ("learning_rate",), "unet lr": ("unet_lr",), "noise offset": ("noise_offset",),
    "dropout": ("network_dropout",), "network dropout": ("network_dropout",),
    "snr gamma": ("min_snr_gamma",), "min snr gamma": ("min_snr_gamma",),
    "min-snr gamma": ("min_snr_gamma",), "gradient accumulation":
    ("gradient_accumulation_steps",), "gradient accumulation steps":
    ("gradient_accumulation_steps",), "grad accum": ("gradient_accumulation_steps",),
    "optimizer": ("optimizer_type",), "steps": ("max_train_steps",),
    "max steps": ("max_train_steps",), "training steps": ("max_train_steps",),
    "train steps": ("max_train_steps",), "epochs": ("max_train_epochs",),
    "batch size": ("train_batch_size",), "resolution": ("resolution",),
    "scheduler": ("lr_scheduler",), "lr scheduler": ("lr_scheduler",),
    "warmup": ("lr_warmup_steps",), "warmup steps": ("lr_warmup_steps",),
    "network module": ("network_module",), "checkpoints": ("save_every_n_steps",),
    "save every": ("save_every_n_steps",), "samples": ("sample_every_n_steps",),
    "sample every": ("sample_every_n_steps",), "seed": ("seed",),
    "mixed precision": ("mixed_precision",), "timestep sampling": ("timestep_sampling",),
}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NEGATION = re.compile(r"\b(unused|not used|not loaded|deprecated|legacy|obsolete|ignored|"
                       r"no longer|removed)\b", re.I)
_ENV_SET = re.compile(r"(?:^|[\s`(;])(?:export\s+)?([A-Z][A-Z0-9_]*[A-Z0-9])=(\S*)")
_PATH_MENTION = re.compile(r"`([^`\s]+)`|\]\(([^)\s]+)\)")
_FAMILY_WORDS = {"train", "training", "flux", "sdxl", "sd3", "sd15", "lora", "network", "run"}


def _documents(project: ProjectContext) -> list[tuple[str, markdown.Markdown]]:
    """``(display path, parsed Markdown)`` of every readable Markdown file, once per run."""

    def parse_all() -> list[tuple[str, markdown.Markdown]]:
        paths = project.files.get("markdown", [])
        if not paths:
            return []  # no Markdown linted: keep the scanner off the import path
        from lorac.scan import markdown

        read = ((path, read_lenient(path)) for path in paths)
        return [(display_path(path), markdown.parse(text)) for path, text in read if text]

    return project.memo("lorac.docs.markdown", parse_all)


# --------------------------------------------------------------------------- subjects


@dataclass
class Subject:
    """Something a doc can describe: a profile or a training script, with its options."""

    kind: str  # "profile" | "script"
    name: str
    path: str
    aliases: set[str]
    trainer: str
    options: dict[str, tuple[Any, str]] = field(default_factory=dict)  # value, location


def _trainer_of(profile: Profile) -> str:
    from lorac.config.inventory import family_script

    return family_script(profile.family) or "train_network.py"


def subjects(project: ProjectContext) -> list[Subject]:
    """Profiles and training scripts of the linted tree, profiles first (once per run)."""

    return project.memo("lorac.docs.subjects", lambda: _subjects(project))


def _subjects(project: ProjectContext) -> list[Subject]:
    out: list[Subject] = []
    for profile in project.profiles:
        options = {k: (v, profile.where(kp).location()) for k, (v, kp) in
                   profile.options().items()}
        dataset = profile.get("dataset")
        if isinstance(dataset, dict):
            for key, option in (("resolution", "resolution"), ("batch_size", "train_batch_size")):
                if key in dataset and option not in options:
                    options[option] = (dataset[key], profile.where(("dataset", key)).location())
        out.append(Subject("profile", profile.name, profile.path,
                           {profile.name.lower(), Path(profile.path).name.lower()},
                           _trainer_of(profile), options))
    for script in model(project).scripts:
        stem = Path(script.path).stem.lower()
        words = [w for w in re.split(r"[_\-]", stem) if w and w not in _FAMILY_WORDS]
        aliases = {Path(script.path).name.lower(), stem}
        if len(words) == 1:
            aliases.add(words[0])
        options = {}
        for o in script.invocation.options:
            value, line, col = script.value(o.name)
            options[o.name] = (value if value is not None else o.raw,
                               f"{script.path}:{line}:{col}")
        out.append(Subject("script", stem, script.path, aliases, script.invocation.trainer,
                           options))
    return out


def _bind(context: tuple[str, ...], found: list[Subject]) -> Subject | None:
    """The subject that the innermost naming context string names (None when none or
    ambiguous)."""

    for text in reversed(context):
        low = text.lower()
        by_file = [s for s in found if re.search(
            r"(?<![\w.-])" + re.escape(Path(s.path).name.lower()) + r"(?![\w-])", low)]
        if len({s.path for s in by_file}) == 1:
            return by_file[0]
        if by_file:
            return None
        names = {a for s in found for a in s.aliases if "." not in a
                 and re.search(r"(?<![\w-])" + re.escape(a) + r"(?![\w-])", low)}
        if len(names) == 1:
            alias = names.pop()
            matching = [s for s in found if alias in s.aliases]
            matching.sort(key=lambda s: s.kind != "profile")
            return matching[0]
        if names:
            return None
    return None


def _label_options(label: str) -> tuple[str, ...]:
    low = re.sub(r"\(.*?\)", "", label.lower()).strip(" :")
    low = re.sub(r"\s+", " ", low)
    if low in LABELS:
        return LABELS[low]
    if re.fullmatch(r"[a-z][a-z0-9_]+", low) and "_" in low:
        return (low,)
    return ()


def _option_type(trainer: str, option: str) -> tuple[str, Any] | None:
    from lorac.config.inventory import load_kohya_inventory

    try:
        found = load_kohya_inventory(trainer).get(option)
    except (OSError, ValueError, KeyError):
        return None
    return (found.type, found.default) if found else None


def _parse(text: str, kind: str) -> Any:
    """The value a doc states, as the option's kind; None when it cannot be read."""

    from lorac.scan import markdown

    clean = markdown.strip_markup(text)
    if kind in ("int", "float"):
        m = _NUMBER.search(clean)
        return float(m.group(0)) if m else None
    if kind == "bool":
        low = clean.lower().split()[0] if clean.split() else ""
        if low in ("yes", "true", "on", "enabled"):
            return True
        if low in ("no", "false", "off", "disabled"):
            return False
        return None
    if kind == "resolution":
        nums = [float(n) for n in _NUMBER.findall(clean.replace("x", ","))]
        return (nums * 2)[:2] if nums else None
    words = clean.split()
    return words[0].strip(".,;").lower() if words else None


def _kind(option: str, trainer: str) -> tuple[str, Any]:
    if option == "resolution":
        return "resolution", None
    found = _option_type(trainer, option)
    if found is None:
        return "str", None
    kind, default = found
    return (kind if kind in ("int", "float", "bool") else "str"), default


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
    return a == b


def _shown(value: Any) -> str:
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_shown(v) for v in value)
    return "not set" if value is None else str(value)


class GeneratedBlockStale(Rule):
    """What it does
    Reports a generated block (between ``<!-- lorac:begin profile=… -->`` and
    ``<!-- lorac:end -->``) whose content differs from what the named profile renders to.

    Why is this bad?
    The block exists so that docs cannot drift from the profile; a stale block is exactly
    that drift.

    Example
        <!-- lorac:begin profile=final keys=network_dim,network_alpha format=table -->
        | `network_alpha` | 32 |          (the profile now says 64)
        <!-- lorac:end -->

    Use instead
    Run ``lorac lint --fix``.

    Fix safety
    Safe: only the lines between the markers are rewritten, from the resolved profile.
    """

    code = "LRC301"
    name = "generated-block-stale"
    fix = "safe"
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        for path, md in _documents(ctx):
            for block in md.blocks:
                if block.error or block.end is None:
                    continue
                rendered = _render(ctx, path, block)
                if rendered is None or isinstance(rendered, tuple):
                    continue
                if block.body.strip("\n").rstrip() == rendered.rstrip():
                    continue
                yield self.in_file(
                    path, block.begin, 1,
                    f"generated block for profile {block.params['profile']!r} is stale",
                    fix=[Edit(path, ("text", block.begin + 1, block.end - 1), rendered)],
                    hint="run `lorac lint --fix` to regenerate it")


def _find_profile(ctx: ProjectContext, name: str) -> Profile | None:
    for profile in ctx.profiles:
        if profile.name == name:
            return profile
    candidate = ctx.settings.profiles / f"{name}.toml"
    if candidate.is_file():
        from lorac.config.profile import resolve

        # resolved on its own, not through the run's documents: suppressions in a profile
        # that is not linted must not count as unused (LRC006)
        return ctx.memo(("lorac.docs.profile", name),
                        lambda: resolve(candidate, env=ctx.env).profile)
    return None


def _render(ctx: ProjectContext, path: str, block: markdown.Block) -> str | tuple[str] | None:
    """The rendered body, or ``(error,)`` when the block cannot be rendered; computed once
    per block and lint run (LRC301 and LRC306 both ask)."""

    return ctx.memo(("lorac.docs.render", path, block.begin),
                    lambda: _render_block(ctx, block))


def _render_block(ctx: ProjectContext, block: markdown.Block) -> str | tuple[str] | None:
    profile = _find_profile(ctx, block.params["profile"])
    if profile is None:
        return (f"no profile named {block.params['profile']!r}",)
    options = {k: v for k, (v, _) in profile.options().items()}
    keys = [k.strip() for k in block.params.get("keys", "").split(",") if k.strip()]
    keys = keys or list(options)
    from lorac.config.inventory import load_kohya_inventory

    try:
        inventory = load_kohya_inventory(_trainer_of(profile))
    except (OSError, ValueError, KeyError):
        inventory = None
    unknown = [k for k in keys if k not in options and (inventory is None or k not in inventory)]
    if unknown:
        return (f"unknown key(s) {', '.join(unknown)} for profile {profile.name!r}",)
    from lorac.scan import markdown

    return markdown.render_block(options, keys, block.params.get("format", "table"))


class MalformedGeneratedBlock(Rule):
    """What it does
    Reports a ``lorac:begin`` / ``lorac:end`` marker that cannot be rendered: a missing end
    or begin, an unknown parameter or format, a profile that does not exist, a key that is
    no trainer option.

    Why is this bad?
    The block silently stops being regenerated.

    Example
        <!-- lorac:begin profile=fianl -->

    Use instead
        <!-- lorac:begin profile=final keys=network_dim,network_alpha -->
        <!-- lorac:end -->

    Fix safety
    No fix.
    """

    code = "LRC306"
    name = "malformed-generated-block"
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        for path, md in _documents(ctx):
            for block in md.blocks:
                error = block.error
                if error is None and block.end is not None:
                    rendered = _render(ctx, path, block)
                    error = rendered[0] if isinstance(rendered, tuple) else None
                if error:
                    yield self.in_file(path, block.begin, 1, error)


class DocClaimMismatch(Rule):
    """What it does
    Reads claims in Markdown — table rows, bullets and ``Name: value`` lines naming a
    setting by option name or by a human label ("Rank/Alpha", "Learning rate", "Noise
    offset", "Dropout", "SNR gamma", "Gradient accumulation", "Optimizer", "Steps", …) —
    under a heading or sentence that names a profile or a training script, and compares each
    with the resolved value. Reports both values and both places.

    Why is this bad?
    People tune from the docs. The audited guide promised rank/alpha 32/32, noise offset
    0.05, dropout 0.1 and SNR gamma 5.0; the script trained with alpha 1 and none of the
    others.

    Example
        ### Fast profile (`train_flux_fast.sh`)
        | Rank/Alpha | 32/32 |        (the script passes --network_alpha=1)

    Use instead
    Fix the docs or the configuration, or let a generated block
    (``<!-- lorac:begin profile=fast -->``) keep the table.

    Fix safety
    No fix: which side is right is a decision.
    """

    code = "LRC302"
    name = "doc-claim-mismatch"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        found = subjects(ctx)
        if not found:
            return
        for path, md in _documents(ctx):
            for claim in md.claims:
                options = _label_options(claim.label)
                if not options:
                    continue
                subject = _bind(claim.context, found)
                if subject is None:
                    continue
                parts = re.split(r"\s*/\s*", claim.value) if len(options) > 1 \
                    else [claim.value]
                if len(parts) != len(options):
                    continue
                problems = []
                for option, text in zip(options, parts, strict=True):
                    kind, default = _kind(option, subject.trainer)
                    stated = _parse(text, kind)
                    if stated is None:
                        continue
                    if option in subject.options:
                        raw, where = subject.options[option]
                        actual = _parse(str(raw), kind) if not isinstance(raw, bool) else raw
                        how = f"{subject.path} has {_shown(actual)} ({where})"
                    else:
                        actual = float(default) if kind in ("int", "float") and isinstance(
                            default, (int, float)) and not isinstance(default, bool) else default
                        actual = actual if kind != "str" or actual is None else str(actual).lower()
                        how = (f"{subject.path} does not set it, so the trainer default "
                               f"({_shown(actual)}) applies")
                    if actual is None and kind == "bool":
                        actual = False
                    if not _same(stated, actual):
                        problems.append(f"{option} = {_shown(stated)} but {how}")
                if problems:
                    yield self.in_file(path, claim.line, claim.col,
                                       f"docs say {'; '.join(problems)}",
                                       hint="fix the docs or the configuration, or use a "
                                       "lorac:begin block")


class DocNamesUnloadedConfig(Rule):
    """What it does
    Reports a doc line that names a trainer configuration file which nothing loads (see
    LRC801), unless the line says it is unused or deprecated.

    Why is this bad?
    The reader edits the file the docs point at, and nothing changes.

    Example
        - `configs/flux_fast.toml` - Fast profile config

    Use instead
    Point the docs at what controls training (the profile or the script), or load the
    file.

    Fix safety
    No fix.
    """

    code = "LRC303"
    name = "doc-names-unloaded-config"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        unloaded = [c for c in model(ctx).configs if not c.used_by]
        if not unloaded:
            return
        patterns = [(c, re.compile(r"(?<![\w.-])" + re.escape(Path(c.path).name) + r"(?![\w-])"))
                    for c in unloaded]
        for path, md in _documents(ctx):
            for number, line in enumerate(md.lines, 1):
                if _NEGATION.search(line):
                    continue
                for config, pattern in patterns:
                    for m in pattern.finditer(line):
                        yield self.in_file(
                            path, number, m.start() + 1,
                            f"docs present {config.path} as configuration, but nothing loads "
                            "it", hint="point the docs at the profile or script that controls "
                            "training, or load the file")


class DocPathNotFound(Rule):
    """What it does
    Reports a path in backticks or a link target that points into an existing folder of the
    repository but names a file that does not exist.

    Why is this bad?
    Renamed or deleted files leave docs that send readers nowhere.

    Example
        See `scripts/train_flux.sh`.      (the script is scripts/train_flux_fast.sh)

    Use instead
    Fix the path.

    Fix safety
    No fix.
    """

    code = "LRC304"
    name = "doc-path-not-found"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        root = model(ctx).root
        for path, md in _documents(ctx):
            folder = Path(path).parent
            for number, line in enumerate(md.lines, 1):
                if number in md.code_lines:
                    continue
                for m in _PATH_MENTION.finditer(line):
                    target = m.group(1) or m.group(2)
                    target = re.sub(r"[#:].*$", "", target).rstrip("/")
                    if ("/" not in target or target.startswith(("/", "~", "http"))
                            or re.search(r"[<>*{}$|]", target)
                            or (target.startswith(".") and not target.startswith("../"))):
                        continue
                    first = target.split("/")[0]
                    bases = [folder, root]
                    if any((b / target).exists() for b in bases):
                        continue
                    if not any((b / first).is_dir() for b in bases):
                        continue
                    yield self.in_file(path, number, m.start() + 2,
                                       f"{target} does not exist",
                                       hint="fix the path or remove the reference")


class DocEnvVarUnused(Rule):
    """What it does
    Reports docs that tell the reader to set an environment variable (``export NAME=…`` or
    ``NAME=… ./script``) that no script, env file or profile reads.

    Why is this bad?
    The advice does nothing: the audited guide's fix for washed-out samples was
    ``NOISE_OFFSET=0.05``, which no script passed to the trainer.

    Example
        export NOISE_OFFSET=0.05
        ./scripts/train_flux_fast.sh

    Use instead
    Document the variable the scripts read (and make them read it), or the profile key.

    Fix safety
    No fix.
    """

    code = "LRC305"
    name = "doc-env-var-unused"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        read = readers(ctx)
        defined = {a.name for sc in model(ctx).scans.values() for a in sc.assignments}
        for path, md in _documents(ctx):
            for number, line in enumerate(md.lines, 1):
                for m in _ENV_SET.finditer(line):
                    name = m.group(1)
                    if name in read or runtime_variable(name):
                        continue
                    similar = sorted(n for n in defined if n.endswith("_" + name))
                    extra = (f"; the repository defines {', '.join(similar)} instead"
                             if similar else "")
                    yield self.in_file(path, number, m.start(1) + 1,
                                       f"docs tell to set {name}, but no script, env file or "
                                       f"profile reads it{extra}",
                                       hint="document a setting that is wired, or wire it")


#: Trainer options a saved LoRA records, with the metadata key that records each.
LORA_SETTINGS: tuple[tuple[str, str], ...] = (
    ("network_dim", "ss_network_dim"), ("network_alpha", "ss_network_alpha"),
    ("network_module", "ss_network_module"), ("network_args", "ss_network_args"),
    ("learning_rate", "ss_learning_rate"), ("unet_lr", "ss_unet_lr"),
    ("text_encoder_lr", "ss_text_encoder_lr"), ("optimizer_type", "ss_optimizer"),
    ("lr_scheduler", "ss_lr_scheduler"), ("lr_warmup_steps", "ss_lr_warmup_steps"),
    ("max_train_steps", "ss_max_train_steps"), ("mixed_precision", "ss_mixed_precision"),
    ("seed", "ss_seed"), ("noise_offset", "ss_noise_offset"),
    ("min_snr_gamma", "ss_min_snr_gamma"), ("network_dropout", "ss_network_dropout"),
    ("gradient_accumulation_steps", "ss_gradient_accumulation_steps"),
    ("resolution", "ss_resolution"),
)


def lora_recorded(inspection: Any) -> dict[str, tuple[Any, str]]:
    """Option -> (value, what says so) of a :class:`lorac.scan.lora.Inspection`: rank and alpha
    from the tensors where every module agrees, the rest from the ``ss_*`` metadata."""

    out: dict[str, tuple[Any, str]] = {}
    for option, key in LORA_SETTINGS:
        if key in inspection.settings:
            out[option] = (inspection.settings[key], f"metadata {key}")
    if inspection.rank is not None:
        out["network_dim"] = (inspection.rank, "the tensors' rank")
    if inspection.alpha is not None:
        out["network_alpha"] = (inspection.alpha, "the tensors' alpha")
    return out


def _lora_norm(option: str, value: Any) -> Any:
    """``value`` of ``option`` in a form that compares across TOML and safetensors metadata."""

    if value is None:
        return None
    if option == "network_args":
        items = value.items() if isinstance(value, dict) else (
            (str(v).split("=", 1) + [""])[:2] for v in (value if isinstance(value, list)
                                                       else [value]))
        return {str(k).strip().lower(): str(v).strip().strip("'\"").lower() for k, v in items}
    if option == "resolution":
        nums = [float(n) for n in _NUMBER.findall(str(value))]
        return (nums * 2)[:2] if nums else str(value)
    if option == "optimizer_type":
        name = str(value).split("(")[0].strip()
        return name.rsplit(".", 1)[-1].lower()
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return text.lower()


def lora_findings(rule: Rule, profile: Profile, inspection: Any, shown_path: str
                  ) -> list[Diagnostic]:
    """Every setting ``profile`` writes that the saved LoRA ``inspection`` records otherwise,
    each at the profile's position."""

    recorded = lora_recorded(inspection)
    options = profile.options()
    dataset = profile.get("dataset")
    if isinstance(dataset, dict) and "resolution" in dataset and "resolution" not in options:
        options["resolution"] = (dataset["resolution"], ("dataset", "resolution"))
    out = []
    for option, _key in LORA_SETTINGS:
        if option not in options or option not in recorded:
            continue
        value, key_path = options[option]
        saved, source = recorded[option]
        a, b = _lora_norm(option, value), _lora_norm(option, saved)
        if isinstance(b, dict) and isinstance(a, dict):
            differs = {k: v for k, v in a.items() if b.get(k) != v}
        else:
            differs = not _same(a, b)
        if differs:
            out.append(rule.at(profile, key_path,
                               f"{option} = {_shown(value)} but the saved LoRA {shown_path} has "
                               f"{_shown(saved)} ({source})",
                               hint="the file records what was trained: fix the profile, or "
                               "retrain"))
    return out


class LoraFileContradicts(Rule):
    """What it does
    Reads every saved LoRA (``*.safetensors`` with LoRA weights) in the linted tree — its
    header only: the rank and alpha its tensors carry and the ``ss_*`` settings the trainer
    recorded (``ss_network_dim``, ``ss_network_alpha``, ``ss_network_module``,
    ``ss_network_args``, learning rates, resolution, …) — and compares them with every
    profile the file belongs to: the profile whose ``output_name`` names the file, or the only
    profile of the tree. ``lorac inspect FILE --profile NAME`` reports the same findings.
    Doc claims of rank, alpha or network module (as LRC302 reads them) about the profile or
    training script whose ``output_name`` begins the file's name (a script's fixed start
    before a date) are compared with the file too, at the doc's line.

    Why is this bad?
    The file is what was trained. The audited docs promised alpha 32; the script passed
    alpha 1, and every LoRA it saved says ``ss_network_alpha = 1``.

    Example
        [network]
        network_alpha = 32        (output/identity.safetensors has alpha 1)

        ### Fast profile (`train_flux_fast.sh`)
        | Rank/Alpha | 32/32 |   (output/flux_fast_20250101.safetensors has alpha 1)

    Use instead
    Make the profile and the docs say what trained the file, or retrain.

    Fix safety
    No fix: which side is right is a decision.
    """

    code = "LRC307"
    name = "lora-file-contradicts"
    severity = Severity.WARNING
    scope = "project"

    def check(self, ctx: ProjectContext) -> Iterable[Diagnostic]:
        files = ctx.files.get("lora", [])
        profiles = ctx.profiles
        found_subjects = subjects(ctx) if files else []
        if not files or not (profiles or found_subjects):
            return
        from lorac.core.diagnostics import LoracError
        from lorac.scan import lora  # (read only where a LoRA file is in the tree)

        # a saved LoRA can be gigabytes: the result cache watches its size and time only
        ctx.cache.setdefault("deps", set()).update(files)
        for path in files:
            try:
                found = lora.inspect_file(path, health=False)
            except LoracError:
                continue  # not a LoRA (a base model, a VAE) or not readable: not a claim
            names = {Path(path).stem, str(found.settings.get("ss_output_name") or "")} - {""}
            shown = display_path(path)
            named = [p for p in profiles if isinstance(p.option("output_name"), str)
                     and p.option("output_name") in names]
            owners = named or (profiles if len(profiles) == 1 else [])
            for profile in owners:
                yield from lora_findings(self, profile, found, shown)
            owner = _lora_subject(ctx, found_subjects, names)
            if owner is not None:
                yield from self._doc_claims(ctx, found_subjects, owner, found, shown)

    def _doc_claims(self, ctx: ProjectContext, found_subjects: list[Subject], owner: Subject,
                    inspection: Any, shown: str) -> Iterable[Diagnostic]:
        """Doc claims of rank, alpha or module about ``owner`` that the saved file
        contradicts, at the doc's line."""

        recorded = lora_recorded(inspection)
        for path, md in _documents(ctx):
            for claim in md.claims:
                options = _label_options(claim.label)
                if not options or not set(options) & _LORA_CLAIMS or \
                        _bind(claim.context, found_subjects) is not owner:
                    continue
                parts = re.split(r"\s*/\s*", claim.value) if len(options) > 1 \
                    else [claim.value]
                if len(parts) != len(options):
                    continue
                problems = []
                for option, text in zip(options, parts, strict=True):
                    if option not in _LORA_CLAIMS or option not in recorded:
                        continue
                    stated = _parse(text, _kind(option, owner.trainer)[0])
                    saved, source = recorded[option]
                    if stated is not None and not _same(stated, _lora_norm(option, saved)):
                        problems.append(f"{option} = {_shown(stated)} but the saved LoRA "
                                        f"{shown} of {owner.path} has {_shown(saved)} "
                                        f"({source})")
                if problems:
                    yield self.in_file(path, claim.line, claim.col,
                                       f"docs say {'; '.join(problems)}",
                                       hint="the file records what was trained: fix the docs "
                                       "or the script, or retrain")


#: Doc claims a saved LoRA can contradict.
_LORA_CLAIMS = {"network_dim", "network_alpha", "network_module"}


def _output_prefix(raw: str, assignments: dict[str, str], depth: int = 0) -> str:
    """The fixed start of an ``output_name`` value: through a variable to its assignment and
    through ``${1:-default}`` to the default, up to the first ``$`` (a date, a counter)."""

    text = raw.strip().strip("\"'")
    if depth < 8:
        m = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?", text)
        if m and m.group(1) in assignments:
            return _output_prefix(assignments[m.group(1)], assignments, depth + 1)
        m = re.fullmatch(r"\$\{\w+:?[-=](.*)\}", text, re.S)
        if m:
            return _output_prefix(m.group(1), assignments, depth + 1)
    return text.split("$", 1)[0].split("`", 1)[0]


def _lora_subject(ctx: ProjectContext, found_subjects: list[Subject], names: set[str]
                  ) -> Subject | None:
    """The profile or script whose ``output_name`` (its fixed start, for a script that adds
    a date) begins the file's name; None when none does or two do equally well."""

    scripts = {s.path: s for s in model(ctx).scripts}
    best: list[tuple[int, Subject]] = []
    for subject in found_subjects:
        if "output_name" not in subject.options:
            continue
        raw = str(subject.options["output_name"][0])
        script = scripts.get(subject.path)
        assignments = {a.name: a.value for a in script.scan.assignments} if script else {}
        prefix = _output_prefix(raw, assignments)
        if len(prefix) >= 3 and any(n.startswith(prefix) for n in names):
            best.append((len(prefix), subject))
    if not best:
        return None
    best.sort(key=lambda b: -b[0])
    if len(best) > 1 and best[1][0] == best[0][0]:
        return None
    return best[0][1]

RULES = (GeneratedBlockStale, DocClaimMismatch, DocNamesUnloadedConfig, DocPathNotFound,
         DocEnvVarUnused, MalformedGeneratedBlock, LoraFileContradicts)


@hookimpl
def lorac_rules() -> list[Rule]:
    return [cls() for cls in RULES]
