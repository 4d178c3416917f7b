"""LRC109–LRC112 — LyCORIS and the network modules whose ``network_args`` or alpha behave
differently from LoRA.

The facts come from generated data: ``backends/kohya/lycoris.toml`` (``lycoris-lora`` at the
release pinned there by version and sdist sha256: algorithms, presets, ``str_bool`` keys, how
each algorithm scales) and ``backends/kohya/network_modules.toml`` (sd-scripts' own modules).
Misspelt ``network_args`` keys of ``lycoris.kohya`` are LRC106's, which reads the same data.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any, ClassVar

from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.lint.rules.network import (
    OFT_MODULES,
    _module_of,
    _NetworkArgsRule,
    is_base,
    literal_edit,
    network_algo,
    option_path,
)


def _lycoris() -> dict[str, Any]:
    from lorac.config.inventory import load_lycoris

    return load_lycoris()


def _release() -> str:
    source = _lycoris().get("source", {})
    return f"lycoris-lora {source.get('version', '?')}"


class _LycorisName(_NetworkArgsRule):
    """The ``network_args`` entry ``arg`` of ``lycoris.kohya``, whose value (lower-cased with
    ``fold_case``, ``default`` when empty) must be a name listed under ``listed`` in
    ``backends/kohya/lycoris.toml`` or end with one of ``files``; ``stops`` says what
    happens otherwise."""

    arg: ClassVar[str]
    listed: ClassVar[str]
    stops: ClassVar[str]
    fold_case: ClassVar[bool] = False
    default: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        if _module_of(ctx.profile) != "lycoris.kohya":
            return
        data = _lycoris().get("lycoris", {})
        names = data.get(self.listed, [])
        for kp, key, value, _facts in self.pairs(ctx):
            spelled = value.lower() if self.fold_case else value
            if key != self.arg or (spelled or self.default) in names or value.endswith(self.files):
                continue
            close = difflib.get_close_matches(spelled, names, n=1)
            fix = [literal_edit(ctx.profile, kp, f"{self.arg}={close[0]}")] if close else []
            yield self.at(ctx.profile, kp, f"LyCORIS has no {self.arg} {value!r} ({_release()}, "
                          f"{data.get(self.listed + '_at')}){self.stops}",
                          hint=f"did you mean {close[0]!r}?" if close else
                          "one of: " + ", ".join(names), fix=fix)


class LycorisUnknownAlgo(_LycorisName):
    """What it does
    Reports a LyCORIS ``algo`` that the pinned ``lycoris-lora`` release does not have, with the
    closest one it does.

    Why is this bad?
    ``lycoris/kohya.py`` looks the name up in ``network_module_dict`` (``lycoris/wrapper.py``)
    when it builds the network: an unknown name stops the run with a ``KeyError`` after the
    models have loaded. ``ia3`` and ``tlora`` exist only from 4.x on.

    Example
        network_module = "lycoris.kohya"
        network_args = ["algo=lokor"]

    Use instead
        network_args = ["algo=lokr"]

    Fix safety
    Unsafe: ``--unsafe-fixes`` writes the closest name, which picks the algorithm that trains.
    """

    code = "LRC109"
    name = "lycoris-unknown-algo"
    severity = Severity.ERROR
    fix = "unsafe"
    arg, listed, fold_case, default = "algo", "algos", True, "lora"
    stops = ": the run stops with a KeyError"


class LycorisUnknownPreset(_LycorisName):
    """What it does
    Reports a LyCORIS ``preset`` that is neither a built-in preset of the pinned release nor a
    path to a preset file (``.toml``/``.json``).

    Why is this bad?
    ``lycoris/kohya.py`` reads any other name as a preset file and asserts that it loaded: the
    run stops at start-up.

    Example
        network_args = ["algo=lokr", "preset=attn_only"]

    Use instead
        network_args = ["algo=lokr", "preset=attn-only"]

    Fix safety
    Unsafe: ``--unsafe-fixes`` writes the closest built-in name, which picks the layers trained.
    """

    code = "LRC110"
    name = "lycoris-unknown-preset"
    severity = Severity.ERROR
    fix = "unsafe"
    arg, listed, files = "preset", "presets", (".toml", ".json")
    stops = " and it is no preset file"


_FALSE_LIKE = ("false", "0", "no", "off", "")


class NetworkArgFalseReadAsTrue(_NetworkArgsRule):
    """What it does
    Reports a ``network_args`` value meant as false that the module reads as true: LyCORIS's
    ``str_bool`` keys (``str(v).lower() != "false"``: ``0``, ``no``, ``off`` are true), its
    ``decompose_both`` (passed on as the string, so ``False`` is true), and the
    ``bool(value)`` keys of sd-scripts' OFT modules (any non-empty string, ``False`` included,
    is true).

    Why is this bad?
    The option is switched on when the profile says off: ``use_tucker=0`` trains with Tucker
    decomposition, ``enable_conv=False`` on ``networks.oft`` trains the conv layers too.

    Example
        network_module = "networks.oft"
        network_args = ["enable_conv=False"]

    Use instead
    Leave the key out (its default is off).

    Fix safety
    No fix: a profile may share the entry with a module that parses it differently.
    """

    code = "LRC111"
    name = "network-arg-false-read-as-true"
    severity = Severity.ERROR

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        profile = ctx.profile
        module = _module_of(profile)
        for kp, key, value, facts in self.pairs(ctx):
            lowered = value.strip().lower()
            if lowered not in _FALSE_LIKE:
                continue
            if key in facts.get("bools_str", {}) and lowered != "false":
                where = _lycoris().get("lycoris", {}).get("str_bool_at")
                how = "str(v).lower() != 'false'"
            elif module == "lycoris.kohya" and key == "decompose_both":
                where = f"{facts['file']}:{facts['args'][key]}"
                how = "the string is passed on and tested for truth"
            elif key in facts.get("bools_truthy", {}):
                where = f"{facts['file']}:{facts['bools_truthy'][key]}"
                how = "bool(value)"
            else:
                continue
            yield self.at(profile, kp, f"{module} reads {key}={value!r} as True ({how}, "
                          f"{where})", hint=f"remove the entry: {key} is off by default")


class AlphaIsNotAScale(Rule):
    """What it does
    Says how ``network_alpha`` acts when it is not LoRA's ``alpha / dim``: OFT and BOFT
    (LyCORIS ``diag-oft``/``boft``, sd-scripts ``networks.oft``/``networks.oft_flux``) keep it
    as the norm constraint, IA3 and full fine-tuning ignore it, and LoKr ignores it (scale 1)
    wherever both Kronecker factors are full matrices — with ``full_matrix=True``, or where
    ``network_dim`` reaches half the layer's larger factor.

    Why is this bad?
    The LRC101–LRC104 scale rules assume ``alpha / dim``; for these algorithms the alpha a
    profile sets does something else, or nothing (``backends/kohya/lycoris.toml`` names the
    line of each algorithm; LoKr: ``lycoris/modules/lokr.py``, ``networks/lokr.py``).

    Example
        network_module = "lycoris.kohya"
        network_alpha = 16
        network_args = ["algo=boft"]

    Use instead
    Leave ``network_alpha`` out, or set the constraint the algorithm reads.

    Fix safety
    No fix: the intended strength is the user's to choose.
    """

    code = "LRC112"
    name = "alpha-is-not-a-scale"
    severity = Severity.WARNING

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        p = ctx.profile
        if p.backend != "kohya" or is_base(p, ctx.project):
            return
        alpha = p.options().get("network_alpha")
        if alpha is None:
            return
        module = _module_of(p)
        kp = option_path(p, "network_alpha", "network")
        if module in OFT_MODULES:
            from lorac.config.inventory import load_network_modules

            facts = load_network_modules().get(module, {})
            yield self.at(p, kp, f"{module} keeps network_alpha = {alpha[0]!r} as the OFT "
                          f"norm constraint, not a scale (default "
                          f"{facts.get('alpha_default')}, {facts.get('file')}:"
                          f"{facts.get('alpha_default_line')})",
                          hint="leave network_alpha out for the default constraint")
            return
        algo = network_algo(p)
        if algo is None and module in ("networks.lokr",):
            algo, at = "lokr", "networks/lokr.py:182-186"
        elif algo is not None:
            at = _lycoris().get("lycoris", {}).get("scaling", {}).get(algo, {}).get("at")
        else:
            return
        scaling = _lycoris().get("lycoris", {}).get("scaling", {}).get(algo, {})
        kind = "lokr" if algo == "lokr" else scaling.get("kind")
        if kind == "none":
            yield self.at(p, kp, f"LyCORIS {algo} does not scale by network_alpha ({at}): "
                          f"network_alpha = {alpha[0]!r} is not alpha/dim",
                          hint="leave network_alpha out")
        elif kind == "lokr" and self._full(p):
            yield self.at(p, kp, f"LoKr ignores network_alpha = {alpha[0]!r} (scale 1) on "
                          f"every layer whose Kronecker factors are both full — with "
                          f"full_matrix=True, or where network_dim reaches half the layer's "
                          f"larger factor ({at})", hint="expect scale 1 on those layers"
                          ).with_severity(Severity.INFO)

    @staticmethod
    def _full(p: Any) -> bool:
        """``full_matrix`` set true, or a dim above 64 (LoKr's factor -1 splits a 3072-wide
        layer 48×64: from dim 32 on its second factor is already full)."""
        args = p.option("network_args") or []
        if any(isinstance(a, str) and a.replace(" ", "").lower() == "full_matrix=true"
               for a in args):
            return True
        dim = p.option("network_dim")
        return isinstance(dim, int) and not isinstance(dim, bool) and dim > 64


RULES = (LycorisUnknownAlgo, LycorisUnknownPreset, NetworkArgFalseReadAsTrue, AlphaIsNotAScale)


@hookimpl
def lorac_rules() -> list[Rule]:
    """The LRC109–LRC112 LyCORIS and network-argument rules."""

    return [cls() for cls in RULES]
