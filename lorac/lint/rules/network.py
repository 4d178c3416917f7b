"""LRC1xx — the LoRA network: alpha and rank, the network module, ``network_args``.

Every finding of this family states the effective scale ``alpha/dim`` and the learning rate it
implies (``learning_rate × alpha/dim``, and ``unet_lr`` when set): the LoRA update is
multiplied by ``alpha/dim``, so alpha 1 at rank 32 trains with a 32× smaller step than the
learning rate suggests.

The helpers at the top (scale, provenance-aware edits, base-profile detection) are shared with
:mod:`lorac.trainers.kohya.rules.compat`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lorac.config.profile import REFERENCE, Profile
from lorac.core.diagnostics import Diagnostic, Edit, KeyPath, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, ProjectContext, Rule

# --------------------------------------------------------------------------- shared helpers

KOHYA_DIM_DEFAULT = 4  # networks/lora_flux.py:454-455, networks/lora.py:429-430
PEFT_FAMILIES = ("flux1-dev", "flux1-schnell", "sd3")  # ai-toolkit: alpha = rank (facts.json)
ADAPTIVE_OPTIMIZERS = ("prodigy", "dadapt")  # learning rate is found by the optimizer


def is_base(profile: Profile, project: ProjectContext) -> bool:
    """True when another linted profile extends ``profile``'s file.

    Such a base is checked through the profiles that extend it: every value written in it
    reaches the rules with its children, and what it leaves unset is theirs to set.
    """

    parents = project.memo("lorac.network.extended", lambda: {
        p for other in project.profiles for p in other.chain[1:]})
    return profile.path in parents


def written(profile: Profile, key_path: KeyPath) -> tuple[str, Any] | None:
    """``(file, raw value)`` when ``key_path`` is written in a profile file of the chain.

    The raw value is what the file says (``"${rank}"`` stays a reference); None when the
    value is not written at exactly this key path (a default, or inside a larger value).
    """

    prov = profile.provenance.get(tuple(key_path))
    if prov is None:
        return None
    doc = profile.documents.get(prov.path)
    if doc is None:
        return None
    node: Any = doc.data
    for part in key_path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return prov.path, node


def literal_edit(profile: Profile, key_path: KeyPath, value: Any) -> Edit | None:
    """An edit of ``key_path`` where it is written, only if written as a literal.

    A value that came from ``${var}`` or ``${env:…}`` is not replaced: the fix belongs where the
    variable is defined, and overwriting the reference would cut the link.
    """

    found = written(profile, key_path)
    if found is None:
        return None
    path, raw = found
    if isinstance(raw, str) and REFERENCE.search(raw):
        return None
    if profile.provenance[tuple(key_path)].kind != "file":
        return None
    return Edit(path, tuple(key_path), value)


def beside(profile: Profile, key_path: KeyPath, name: str, value: Any) -> Edit | None:
    """An edit writing option ``name = value`` into the table and file where ``key_path`` is
    written (None when it is not written in a file of the chain)."""

    found = written(profile, key_path)
    return Edit(found[0], (key_path[0], name), value) if found else None


def option_path(profile: Profile, name: str, default_section: str) -> KeyPath:
    """Key path of trainer option ``name``, or where it would be added."""

    found = profile.options().get(name)
    return found[1] if found else (default_section, name)


def with_safety(diag: Diagnostic, safe: bool) -> Diagnostic:
    """``diag`` with its fix marked safe or unsafe (for rules whose safety varies per case)."""

    return dataclasses.replace(diag, fix_safe=safe)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@functools.lru_cache(maxsize=8)
def _lr_default(script: str) -> float | None:
    from lorac.config.inventory import load_kohya_inventory

    try:
        option = load_kohya_inventory(script).get("learning_rate")
    except (OSError, KeyError, ValueError):
        return None
    return _num(option.default) if option else None


def _kohya_alpha_default(profile: Profile) -> float:
    """sd-scripts' alpha when ``network_alpha`` is not given: the module's ``alpha_default``
    in ``backends/kohya/network_modules.toml`` (generated from networks/lora*.py), else 1."""

    from lorac.config.inventory import load_network_modules

    facts = load_network_modules().get(_module_of(profile) or "", {})
    return float(facts.get("alpha_default", 1.0))


@dataclass(frozen=True)
class Scale:
    """The network's effective scale and learning rates."""

    dim: float
    alpha: float
    alpha_set: bool
    lr: float | None
    lr_set: bool
    unet_lr: float | None
    adaptive: bool

    @property
    def value(self) -> float:
        return self.alpha / self.dim if self.dim else 0.0

    def describe(self) -> str:
        alpha = _fmt(self.alpha) + ("" if self.alpha_set else " (default)")
        text = f"alpha/dim = {alpha}/{_fmt(self.dim)} = {_fmt(self.value)}"
        if self.adaptive:
            return text + "; the optimizer adapts the learning rate"
        if self.lr is not None:
            lr = _fmt(self.lr) + ("" if self.lr_set else " (default)")
            text += f"; effective LR = {lr} × {_fmt(self.value)} = {_fmt(self.lr * self.value)}"
        if self.unet_lr is not None:
            text += f", unet_lr {_fmt(self.unet_lr)} → {_fmt(self.unet_lr * self.value)}"
        return text


#: sd-scripts modules whose alpha is not a scale: OFT keeps it as the norm constraint
#: (networks/oft.py, networks/oft_flux.py; ``backends/kohya/network_modules.toml``).
OFT_MODULES = ("networks.oft", "networks.oft_flux")


def network_algo(profile: Profile) -> str | None:
    """The LyCORIS ``algo`` of a ``lycoris.kohya`` profile (``lora`` when not given, lower-cased
    as ``lycoris/kohya.py`` does), else None."""

    if _module_of(profile) != "lycoris.kohya":
        return None
    found = _network_args(profile)
    for arg in found[1] if found else []:
        if isinstance(arg, str) and "=" in arg:
            key, value = arg.split("=", 1)
            if key == "algo":
                return value.lower() or "lora"
    return "lora"


def alpha_scales(profile: Profile) -> bool:
    """False for networks whose alpha is no scale: sd-scripts OFT, and the LyCORIS algorithms
    whose scaling kind is ``none`` (``backends/kohya/lycoris.toml``: diag-oft, boft, ia3, full)."""

    if _module_of(profile) in OFT_MODULES:
        return False
    algo = network_algo(profile)
    if algo is None:
        return True
    from lorac.config.inventory import load_lycoris

    scaling = load_lycoris().get("lycoris", {}).get("scaling", {}).get(algo)
    if scaling is not None and scaling.get("kind") == "lokr":
        return not lokr_ignores_alpha(profile)
    return scaling is None or scaling.get("kind") != "none"


#: Widths of the linear and conv layers of the models lorac trains (SD 1.x to FLUX.1 single
#: blocks, 3072 → 21504): the widest decides whether every layer's LoKr factors are full.
LAYER_WIDTHS = (320, 640, 768, 1024, 1280, 2048, 2560, 3072, 4096, 5120, 6144, 9216, 10240,
                12288, 15360, 21504)


def kron_factors(width: int, factor: int) -> tuple[int, int]:
    """How LyCORIS splits a layer width for LoKr (``lycoris/functional/general.py``
    ``factorization``): ``factor`` and the rest when it divides the width, else the divisor
    pair closest together whose smaller part is at most ``factor`` (any, for -1)."""

    if factor > 0 and width % factor == 0:
        return min(factor, width // factor), max(factor, width // factor)
    limit = width if factor < 0 else factor
    best = (1, width)
    for m in range(2, int(width ** 0.5) + 1):
        if width % m == 0 and m <= limit:
            best = (m, width // m)
    return best


def lokr_ignores_alpha(profile: Profile) -> bool:
    """True when LyCORIS LoKr gives every layer scale 1 whatever ``network_alpha`` says: both
    Kronecker factors are full matrices (``lycoris/modules/lokr.py:210-212``) — with
    ``full_matrix=True``, or a ``network_dim`` of at least half the larger factor of the
    widest layer (the "full dimension" recipe: ``network_dim = 100000``)."""

    found = _network_args(profile)
    args: dict[str, str] = {}
    for arg in found[1] if found else []:
        if isinstance(arg, str) and "=" in arg:
            key, value = arg.split("=", 1)
            args[key.strip()] = value.strip()
    if args.get("full_matrix", "").lower() == "true":
        return True
    dim = _num(profile.option("network_dim", KOHYA_DIM_DEFAULT))
    try:
        factor = int(args.get("factor", "-1"))
    except ValueError:
        return False
    if dim is None:
        return False
    return all(dim >= kron_factors(w, factor)[1] / 2 for w in LAYER_WIDTHS)


def scale_of(profile: Profile) -> Scale | None:
    """The scale of a profile that trains a network with numeric dim/alpha (else None, also
    when the network's alpha is no scale: :func:`alpha_scales`)."""

    opts = profile.options()
    if not any(k in opts for k in ("network_module", "network_dim", "network_alpha")):
        return None
    if profile.backend == "kohya" and not alpha_scales(profile):
        return None
    dim = _num(profile.option("network_dim", KOHYA_DIM_DEFAULT))
    alpha_raw = profile.option("network_alpha")
    alpha_set = alpha_raw is not None
    if alpha_set:
        alpha = _num(alpha_raw)
    elif profile.backend == "ai-toolkit" and profile.family in PEFT_FAMILIES:
        alpha = dim
    else:
        alpha = _kohya_alpha_default(profile)
    if dim is None or alpha is None or dim <= 0:
        return None
    lr = _num(profile.option("learning_rate"))
    lr_set = lr is not None
    if lr is None:
        from lorac.config.inventory import family_script

        lr = _lr_default(family_script(profile.family) or "train_network.py")
    optimizer = str(profile.option("optimizer_type", "")).lower()
    return Scale(dim, alpha, alpha_set, lr, lr_set, _num(profile.option("unet_lr")),
                 any(a in optimizer for a in ADAPTIVE_OPTIMIZERS))


def family_of(profile: Profile) -> tuple[str | None, bool]:
    """``(family, inferred)``: ``[profile] family``, else guessed from the model options
    (``ae`` → FLUX.1-dev, ``clip_g`` → SD3), as in a kohya ``--config_file`` without lorac's
    ``[profile]`` table."""

    if profile.family:
        return profile.family, False
    opts = profile.options()
    if "clip_g" in opts:
        return "sd3", True
    if "ae" in opts or "t5xxl" in opts:
        return "flux1-dev", True
    return None, False


def _suffix(profile: Profile, key_path: KeyPath) -> str:
    where = profile.where(key_path)
    return "" if where.path == profile.path else f" (in profile {profile.name})"


def _network_args(profile: Profile) -> tuple[KeyPath, list[Any]] | None:
    found = profile.options().get("network_args")
    if not found or not isinstance(found[0], list):
        return None
    return found[1], found[0]


def _module_of(profile: Profile) -> str | None:
    value = profile.option("network_module")
    return value if isinstance(value, str) else None


# --------------------------------------------------------------------------- rules


class _NetworkRule(Rule):
    groups = ("network",)

    def scale(self, ctx: ProfileContext) -> Scale | None:
        if is_base(ctx.profile, ctx.project):
            return None
        return scale_of(ctx.profile)


class AlphaUnset(_NetworkRule):
    """What it does
    Reports a network (``network_module`` or ``network_dim`` set) whose ``network_alpha`` is
    not set, with the scale and effective learning rate the backend's default gives it.

    Why is this bad?
    The backend's default then decides the size of every update: sd-scripts uses alpha 1
    (``networks/lora_flux.py:456-457``, ``networks/lora.py:431-432``,
    ``networks/lora_sd3.py:39-40``; recorded in ``backends/kohya/network_modules.toml``), and
    so does ai-toolkit for SD models (``toolkit/config_modules.py:184``), while ai-toolkit
    FLUX/SD3 forces alpha = rank (``toolkit/lora_special.py:430``). The same profile is a
    16× different update at rank 16 depending on the trainer.

    Example
        [network]
        network_module = "networks.lora_flux"
        network_dim = 16

    Use instead
        [network]
        network_module = "networks.lora_flux"
        network_dim = 16
        network_alpha = 16

    Fix safety
    Safe: ``--fix`` writes the value the backend uses today (``network_alpha = 1.0`` for
    sd-scripts) next to ``network_dim``, so training does not change but the choice becomes
    visible — LRC103 then reports it if the scale is too small.
    """

    code = "LRC101"
    name = "network-alpha-unset"
    severity = Severity.WARNING
    fix = "safe"

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        scale = self.scale(ctx)
        if scale is None or scale.alpha_set:
            return
        profile = ctx.profile
        dim_path = option_path(profile, "network_dim", "network")
        module_path = option_path(profile, "network_module", "network")
        anchor = dim_path if "network_dim" in profile.options() else module_path
        section = anchor[0]
        found = written(profile, anchor)
        target = found[0] if found else profile.path
        if profile.backend == "ai-toolkit" and profile.family in PEFT_FAMILIES:
            dim_raw = written(profile, dim_path)
            value: Any = dim_raw[1] if dim_raw and dim_raw[0] == target else int(scale.dim)
        else:
            value = scale.alpha  # the default scale_of found
        fix = [Edit(target, (section, "network_alpha"), value)]
        yield self.at(profile, anchor, f"network_alpha is not set; the {profile.backend} "
                      f"default decides: {scale.describe()}{_suffix(profile, anchor)}",
                      hint="set network_alpha explicitly (alpha = dim gives scale 1)",
                      fix=fix, scale=scale.value)


class AlphaExceedsDim(_NetworkRule):
    """What it does
    Reports ``network_alpha`` greater than ``network_dim`` (a scale above 1).

    Why is this bad?
    ``alpha/dim`` multiplies the LoRA output (``networks/lora_flux.py`` ``LoRAModule``:
    ``self.scale = alpha / self.lora_dim``). Above 1 every step is larger than the learning
    rate says; it is nearly always a swapped pair or a rank lowered without lowering alpha, and
    it overshoots or diverges.

    Example
        network_dim = 16
        network_alpha = 64

    Use instead
        network_dim = 16
        network_alpha = 16

    Fix safety
    Unsafe: setting alpha to dim changes the training (a smaller update); ``--unsafe-fixes``
    writes ``network_alpha`` = the value of ``network_dim`` where alpha is written literally.
    """

    code = "LRC102"
    name = "network-alpha-exceeds-dim"
    severity = Severity.WARNING
    fix = "unsafe"

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        scale = self.scale(ctx)
        if scale is None or not scale.alpha_set or scale.alpha <= scale.dim:
            return
        profile = ctx.profile
        kp = option_path(profile, "network_alpha", "network")
        fix = _alpha_to_dim_fix(profile, kp, scale)
        yield self.at(profile, kp, f"network_alpha is greater than network_dim: "
                      f"{scale.describe()}{_suffix(profile, kp)}",
                      hint="use alpha ≤ dim (alpha = dim gives scale 1)", fix=fix,
                      scale=scale.value)


def _alpha_to_dim_fix(profile: Profile, alpha_path: KeyPath, scale: Scale) -> list[Edit]:
    found = written(profile, alpha_path)
    if found is None:
        return []
    dim_path = option_path(profile, "network_dim", "network")
    dim_raw = written(profile, dim_path)
    value: Any = int(scale.dim) if scale.dim.is_integer() else scale.dim
    if dim_raw is not None and dim_raw[0] == found[0]:
        value = dim_raw[1]  # the same file: keep "${rank}" a reference
    return [Edit(found[0], tuple(alpha_path), value)]


class AlphaScaleTooSmall(_NetworkRule):
    """What it does
    Reports an ``alpha/dim`` far below 1 (under 1/4) whose learning rate does not make up for
    it (``learning_rate × alpha/dim`` under 2e-5) — the audit's alpha 1 at rank 32.

    Why is this bad?
    sd-scripts multiplies the LoRA output by ``alpha/dim`` (``networks/lora_flux.py``
    ``LoRAModule.__init__``: ``self.scale = alpha / self.lora_dim``). With Adam-style
    optimizers the step size is about the learning rate, so the change the LoRA makes per
    step is ``lr × alpha/dim``: alpha 1 at rank 32 with lr 1e-4 learns like lr 3e-6, and a
    3000-step run ends nearly where it started. Adaptive optimizers (Prodigy, D-Adaptation)
    are exempt, and so is LyCORIS LoKr at full dimension (``full_matrix=True``, or a
    ``network_dim`` such as 100000 that makes both Kronecker factors of every layer full):
    it then ignores alpha and trains at scale 1 (``lycoris/modules/lokr.py:210-212``; LRC112).

    Example
        network_dim = 32
        network_alpha = 1
        learning_rate = 1e-4

    Use instead
        network_dim = 32
        network_alpha = 32
        learning_rate = 1e-4

    Fix safety
    Unsafe: ``--unsafe-fixes`` sets ``network_alpha`` to the value of ``network_dim`` where
    alpha is written literally — a 32× larger update at rank 32, which is the point, but it
    changes the training.
    """

    code = "LRC103"
    name = "network-alpha-scale-too-small"
    severity = Severity.ERROR
    fix = "unsafe"
    MIN_SCALE = 0.25
    MIN_EFFECTIVE_LR = 2e-5

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        scale = self.scale(ctx)
        if scale is None or not scale.alpha_set or scale.adaptive:
            return
        if scale.value >= self.MIN_SCALE:
            return
        lr = scale.unet_lr if scale.unet_lr is not None else scale.lr
        if lr is None or lr * scale.value >= self.MIN_EFFECTIVE_LR:
            return
        profile = ctx.profile
        kp = option_path(profile, "network_alpha", "network")
        yield self.at(profile, kp, f"network scale is far below 1 with no compensating "
                      f"learning rate: {scale.describe()}{_suffix(profile, kp)}",
                      hint="set network_alpha = network_dim, or raise the learning rate "
                      "by dim/alpha", fix=_alpha_to_dim_fix(profile, kp, scale),
                      scale=scale.value)


class ScaleDiffersFromSiblings(Rule):
    """What it does
    Reports profiles that extend the same base profile but train with different ``alpha/dim``
    scales, naming each sibling's scale and effective learning rate.

    Why is this bad?
    Profiles of one recipe (fast/final) are compared with each other; when one of them
    multiplies its updates by 1 and the other by 1/64, the comparison measures the scale, not
    the recipe — the audit's fast and final scripts both passed alpha 1 while the docs said
    32/32 and 64/64. The rule is project-scoped: it needs every sibling at once, and it
    reports each odd profile once (the scales that differ from the most common one; all of
    them on a tie).

    Example
        # fast.toml                      # final.toml
        extends = "base"                 extends = "base"
        network_dim = 32                 network_dim = 64
        network_alpha = 32               network_alpha = 1

    Use instead
    The same ``alpha/dim`` in every sibling (alpha = dim in both), or a learning rate that
    compensates, with a comment saying so and a ``# lorac: ignore[LRC104]``.

    Fix safety
    No fix: which sibling is right is a decision.
    """

    code = "LRC104"
    name = "network-scale-differs-from-siblings"
    severity = Severity.WARNING
    scope = "project"
    groups = ("network",)

    def check(self, ctx: ProjectContext) -> Iterator[Diagnostic]:
        groups: dict[str, list[tuple[Profile, Scale]]] = {}
        for profile in ctx.profiles:
            if len(profile.chain) < 2 or is_base(profile, ctx):
                continue
            scale = scale_of(profile)
            if scale is not None:
                groups.setdefault(profile.chain[1], []).append((profile, scale))
        for base, members in sorted(groups.items()):
            values = Counter(round(s.value, 6) for _, s in members)
            if len(values) < 2:
                continue
            top = values.most_common()
            common = None if top[0][1] == top[1][1] else top[0][0]
            listing = "; ".join(f"{p.name}: {_fmt(s.alpha)}/{_fmt(s.dim)} = {_fmt(s.value)}"
                                for p, s in sorted(members, key=lambda m: m[0].name))
            for profile, scale in members:
                if common is not None and round(scale.value, 6) == common:
                    continue
                kp = option_path(profile, "network_alpha", "network")
                if "network_alpha" not in profile.options():
                    kp = option_path(profile, "network_dim", "network")
                yield self.at(profile, kp, f"profiles extending {base} train with different "
                              f"scales ({listing}); {profile.name}: {scale.describe()}",
                              hint="give siblings the same alpha/dim, or compensate with the "
                              "learning rate", scale=scale.value)


class NetworkModuleWrongFamily(_NetworkRule):
    """What it does
    Reports a ``network_module`` that belongs to another model family — ``networks.lora`` on
    FLUX, ``networks.lora_flux`` on SDXL — using ``backends/kohya/families.toml``.

    Why is this bad?
    Each module looks for its own family's layers: ``networks.lora`` wraps the SD U-Net's
    ``Transformer2DModel`` blocks (``networks/lora.py:867``), which the FLUX transformer does
    not have, so on FLUX it creates no modules on the transformer and the run trains (at
    most) the text encoder — for hours. The audit's unused TOMLs said ``networks.lora`` for a
    FLUX run.

    Example
        [profile]
        family = "flux1-dev"
        [network]
        network_module = "networks.lora"

    Use instead
        network_module = "networks.lora_flux"

    Fix safety
    Unsafe: replacing the module changes what is trained (``network_args`` of the old module
    may not apply); ``--unsafe-fixes`` writes the family's module when it has exactly one.
    """

    code = "LRC105"
    name = "network-module-wrong-family"
    severity = Severity.ERROR
    fix = "unsafe"

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        from lorac.config.inventory import load_families

        profile = ctx.profile
        module = _module_of(profile)
        families = load_families()
        family_name, inferred = family_of(profile)
        family = families.get(family_name or "")
        if module is None or family is None or module in family.network_modules:
            return
        if profile.backend != "kohya" or is_base(profile, ctx.project):
            return
        owners = sorted(name for name, f in families.items() if module in f.network_modules)
        if not owners:
            return  # a third-party or other sd-scripts module (LyCORIS, OFT): not ours to judge
        kp = option_path(profile, "network_module", "network")
        fix = []
        if len(family.network_modules) == 1:
            fix = [literal_edit(profile, kp, family.network_modules[0])]
        scale = scale_of(profile)
        where = ", ".join(family.evidence)
        guess = " (family inferred from the model options)" if inferred else ""
        yield self.at(profile, kp, f"{module} is the network module of "
                      f"{', '.join(owners)}, not {family_name}{guess} (which uses "
                      f"{', '.join(family.network_modules)}, {where}); "
                      f"{scale.describe() if scale else ''}".rstrip("; "),
                      hint=f"network_module = \"{family.network_modules[0]}\"", fix=fix)


def _scale_tail(profile: Profile) -> str:
    scale = scale_of(profile)
    return f"; {scale.describe()}" if scale else ""


def _split_arg(arg: str) -> tuple[str, str] | None:
    if "=" not in arg:
        return None
    key, value = arg.split("=", 1)
    return key, value


class _NetworkArgsRule(_NetworkRule):
    def items(self, ctx: ProfileContext) -> Iterator[tuple[KeyPath, str, dict[str, Any]]]:
        """``(key path, entry, module facts)`` of every string entry of ``network_args``."""
        profile = ctx.profile
        if is_base(profile, ctx.project) or profile.backend != "kohya":
            return
        from lorac.config.inventory import load_network_modules

        found = _network_args(profile)
        module = _module_of(profile)
        facts = load_network_modules().get(module or "")
        if found is None or facts is None:
            return
        base, args = found
        for i, arg in enumerate(args):
            if isinstance(arg, str):
                yield (*base, i), arg, facts

    def pairs(self, ctx: ProfileContext) -> Iterator[tuple[KeyPath, str, str, dict[str, Any]]]:
        """``(key path, key, value, module facts)`` of every ``key=value`` entry."""
        for kp, arg, facts in self.items(ctx):
            pair = _split_arg(arg)
            if pair is not None:
                yield kp, pair[0], pair[1], facts


class UnknownNetworkArg(_NetworkArgsRule):
    """What it does
    Reports a ``network_args`` key that the chosen ``network_module`` never reads, with the
    closest key it does read. The keys come from ``backends/kohya/network_modules.toml``,
    generated from each module's ``create_network`` (``kwargs.get("…")``, with file:line).

    Why is this bad?
    sd-scripts splits each entry at the first ``=`` (``train_network.py:1074``) and passes the
    pair to ``create_network(**kwargs)``, which ignores every key it does not look up:
    ``train_block=single`` or ``dropout=0.1`` on ``networks.lora_flux`` does nothing, silently.
    Spaces count: ``"train_blocks = single"`` is the key ``"train_blocks "``.

    Example
        network_module = "networks.lora_flux"
        network_args = ["train_block=single"]

    Use instead
        network_args = ["train_blocks=single"]

    Fix safety
    Safe only for spaces around ``=`` (``--fix`` strips them: the intended key is certain).
    A misspelt key is not fixed; the hint names the closest one.
    """

    code = "LRC106"
    name = "unknown-network-arg"
    severity = Severity.WARNING
    fix = "safe"

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        profile = ctx.profile
        module = _module_of(profile)
        for kp, key, value, facts in self.pairs(ctx):
            known = facts.get("args", {})
            if key in known:
                continue
            tail = _scale_tail(profile)
            if key.strip() in known:
                edit = literal_edit(profile, kp, f"{key.strip()}={value.strip()}")
                yield self.at(profile, kp, f"network_args key {key!r} has spaces around it; "
                              f"{module} reads {key.strip()!r}, so this entry is "
                              f"ignored{tail}", hint=f"write \"{key.strip()}={value.strip()}\"",
                              fix=[edit])
                continue
            close = difflib.get_close_matches(key, list(known), n=1)
            if key == "dropout":
                hint = "use network_dropout (an option, not a network_arg)"
            elif close:
                hint = f"did you mean {close[0]}? ({facts['file']}:{known[close[0]]})"
            else:
                hint = f"{module} reads: {', '.join(known)}"
            yield self.at(profile, kp, f"{module} does not read network_args key {key!r}; it "
                          f"is ignored{tail}", hint=hint)


class MalformedNetworkArg(_NetworkArgsRule):
    """What it does
    Reports a ``network_args`` entry without ``=``.

    Why is this bad?
    sd-scripts unpacks ``key, value = net_arg.split("=", 1)`` (``train_network.py:1074``): an
    entry without ``=`` stops the run with a ``ValueError`` after the models have loaded.

    Example
        network_args = ["train_blocks single"]

    Use instead
        network_args = ["train_blocks=single"]

    Fix safety
    No fix: where the ``=`` belongs is a guess.
    """

    code = "LRC107"
    name = "malformed-network-arg"
    severity = Severity.ERROR

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        for kp, arg, _ in self.items(ctx):
            if "=" not in arg:
                yield self.at(ctx.profile, kp, f"network_args entry {arg!r} has no '='; "
                              "sd-scripts stops with a ValueError (train_network.py:1074)"
                              f"{_scale_tail(ctx.profile)}", hint="write key=value")


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class NetworkArgBoolSpelling(_NetworkArgsRule):
    """What it does
    Reports a boolean ``network_args`` value written other than ``True`` or ``False``.

    Why is this bad?
    ``networks/lora_flux.py`` parses ``split_qkv``, ``train_t5xxl`` and ``verbose`` as
    ``True if value == "True" else False`` (lines 563, 577, 582; ``networks/lora_sd3.py``
    136, 141, 146): ``train_t5xxl=true`` or ``split_qkv=1`` silently means False. The keys come
    from ``backends/kohya/network_modules.toml`` (``bools``).

    Example
        network_args = ["train_t5xxl=true"]

    Use instead
        network_args = ["train_t5xxl=True"]

    Fix safety
    Safe for false-like spellings (``false``, ``0``, ``no``, ``off`` → ``False``): they read
    as False today, so the run does not change. Unsafe for true-like spellings (``true``,
    ``1``, ``yes``, ``on`` → ``True``, with ``--unsafe-fixes``): the fix makes the run do what
    was meant, which changes it (``train_t5xxl=True`` trains T5-XXL: more memory, and it
    cannot be combined with cached text-encoder outputs, LRC614).
    """

    code = "LRC108"
    name = "network-arg-bool-spelling"
    severity = Severity.ERROR
    fix = "safe"

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        profile = ctx.profile
        module = _module_of(profile)
        for kp, key, value, facts in self.pairs(ctx):
            bools = facts.get("bools", {})
            if key not in bools or value in ("True", "False"):
                continue
            lowered = value.strip().lower()
            fixed = "True" if lowered in _TRUE else "False" if lowered in _FALSE else None
            edit = literal_edit(profile, kp, f"{key}={fixed}") if fixed else None
            meant = "intended as True, " if fixed == "True" else ""
            diag = self.at(profile, kp, f"{module} reads {key}={value!r} ({meant}read as "
                           f"False): only the exact string 'True' is true "
                           f"({facts['file']}:{bools[key]}){_scale_tail(profile)}",
                           hint=f"write \"{key}={fixed or 'True'}\"", fix=[edit])
            yield with_safety(diag, fixed == "False")


RULES = (AlphaUnset, AlphaExceedsDim, AlphaScaleTooSmall, ScaleDiffersFromSiblings,
         NetworkModuleWrongFamily, UnknownNetworkArg, MalformedNetworkArg,
         NetworkArgBoolSpelling)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC1xx network rules."""

    return [cls() for cls in RULES]
