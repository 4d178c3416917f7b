"""The ``test`` backend: writes the flattened trainer options as JSON.

It exists to exercise the build pipeline (and to show the smallest possible backend); it
launches nothing. Tests that use it register it with the ``json_backend`` fixture.
"""

from __future__ import annotations

import json

from lorac.config.profile import Profile
from lorac.lint.hookspecs import Artifacts, hookimpl


class TestBackend:
    name = "test"
    formats = ("json",)
    description = "flattened options as JSON (for tests; launches nothing)"

    def emit(self, profile: Profile, fmt: str) -> Artifacts:
        options = {k: v for k, (v, _) in profile.options().items()}
        body = {"profile": profile.name, "family": profile.family, "options": options,
                "dataset": profile.get("dataset", default={})}
        text = json.dumps(body, indent=2, sort_keys=True, default=str) + "\n"
        return Artifacts(files={"options.json": text}, options=options)


@hookimpl
def lorac_backends() -> list[TestBackend]:
    return [TestBackend()]
