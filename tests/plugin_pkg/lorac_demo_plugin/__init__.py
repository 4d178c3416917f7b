"""A third-party rule: descriptions must not be empty.

It imports the rule contract by its first path, ``lorac.rules``, as plugins written for the
flat layout do.
"""

from lorac.rules import Rule

from lorac import hookimpl


class EmptyDescription(Rule):
    """What it does
    Reports an empty ``[profile] description``.

    Why is this bad?
    Nobody knows what the recipe is for.

    Example
        description = ""

    Use instead
        description = "Identity LoRA, production"

    Fix safety
    No fix.
    """

    code = "LRC899"
    name = "empty-description"


    def check(self, ctx):
        if ctx.profile.get("profile", "description") == "":
            yield self.at(ctx.profile, ("profile", "description"), "description is empty")


@hookimpl
def lorac_rules():
    return [EmptyDescription()]
