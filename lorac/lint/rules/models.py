"""LRC644: the model a profile trains is not of the family it says — a FLUX.2 model given to
sd-scripts' ``train_network.py``, or to ai-toolkit as FLUX.1 (``is_flux: true``).
"""

from __future__ import annotations

from collections.abc import Iterator

from lorac.config.model_names import FAMILY_KINDS, KIND_NAMES, disagrees
from lorac.core.diagnostics import Diagnostic, Severity
from lorac.lint.hookspecs import hookimpl
from lorac.lint.rules import ProfileContext, Rule
from lorac.lint.rules.network import is_base, option_path


def _owners(module: str) -> str:
    from lorac.config.inventory import load_families

    owners = [f"{name} ({f.script})" for name, f in load_families().items()
              if module in f.network_modules]
    return ", ".join(owners) if owners else "no sd-scripts family"


class ModelFamilyMismatch(Rule):
    """What it does
    Reports a model whose name says another kind of model than the profile's family trains
    (``black-forest-labs/FLUX.2-dev`` in an ``sd15`` or ``flux1-dev`` profile,
    ``flux1-dev.safetensors`` in an ``sdxl`` one), naming the model, the trainer's script or
    arch, and the network module.

    Why is this bad?
    The family decides the script and the module: ``train_network.py`` with ``networks.lora``
    builds an SD U-Net and wraps its blocks; ai-toolkit with ``is_flux: true`` builds the
    FLUX.1 transformer (``toolkit/config_modules.py:812-813``), while FLUX.2 needs
    ``arch: flux2``. The run fails while it loads the weights, or trains the wrong layers.

    Example
        [profile]
        family = "sd15"
        [model]
        pretrained_model_name_or_path = "black-forest-labs/FLUX.2-dev"
        [network]
        network_module = "networks.lora"

    Use instead
        [profile]
        family = "flux2-dev"            # a family whose trainer loads FLUX.2

    Fix safety
    No fix: whether the model or the family is wrong is the user's to say.
    """

    code = "LRC644"
    name = "model-family-mismatch"
    severity = Severity.ERROR

    def check(self, ctx: ProfileContext) -> Iterator[Diagnostic]:
        from lorac.config.inventory import family_script
        from lorac.config.trainer_values import for_trainer

        profile = ctx.profile
        if is_base(profile, ctx.project):
            return
        family = profile.family
        seen = for_trainer(profile, profile.backend)
        model = seen.option("pretrained_model_name_or_path")
        kind = disagrees(model, family)
        if kind is None:
            return
        trains = KIND_NAMES.get(FAMILY_KINDS.get(family or "", ""), family)
        if profile.backend == "kohya":
            module = seen.option("network_module")
            how = f"{family_script(family) or '?'} trains {family} ({trains})"
            if isinstance(module, str):
                how += f" and network_module {module} is the module of {_owners(module)}"
        elif profile.backend == "ai-toolkit":
            from lorac.config.inventory import load_backend_toml

            arch = load_backend_toml("ai-toolkit/mapping.toml").get("families", {}).get(
                family or "", {}).get("arch", "?")
            how = f"ai-toolkit trains family {family} as arch {arch} ({trains})"
        else:
            how = f"{profile.backend} trains family {family} as {trains}"
        kp = option_path(seen, "pretrained_model_name_or_path", "model")
        yield self.at(seen, kp, f"{model!r} is a {KIND_NAMES[kind]} model, but {how}",
                      hint="set the family of the model (and its script and module), or the "
                      "model of the family")


RULES = (ModelFamilyMismatch,)


@hookimpl
def lorac_rules() -> list[Rule]:
    return [cls() for cls in RULES]
