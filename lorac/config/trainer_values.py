"""Per-trainer values: the profile's ``[trainers.<trainer>]`` tables.

One profile builds for several trainers. A value that differs between them — where the model
lives (kohya's single ``.safetensors`` file, ai-toolkit's diffusers folder or hub id) — is
written once in the shared sections and once per trainer that needs another one::

    [model]
    pretrained_model_name_or_path = "/models/flux1-dev.safetensors"   # every trainer

    [trainers.ai-toolkit]
    pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"    # ai-toolkit only

    [trainers.ai-toolkit.model]                                      # ai-toolkit's own keys
    quantize_te = true

The plain keys of ``[trainers.<trainer>]`` are profile options (kohya's names, like every other
section); :func:`for_trainer` puts them in place of the shared value when the profile is built
for that trainer, and diagnostics about them point at the ``[trainers]`` line. Tables below
``[trainers.<trainer>]`` hold the trainer's own keys; only that trainer's emitter reads them.
Lint checks each table against its trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lorac.config.profile import Profile

SECTION = "trainers"

#: The ``[trainers]`` part of ``docs/profile.md`` (written there by ``lorac.lint.docs_gen``).
DOC = """\
One profile builds for several trainers. A value that must differ between them is written
once in the shared sections and once more in `[trainers.<trainer>]`, for that trainer only;
nothing else is repeated, and there is no second profile.

```toml
[model]
pretrained_model_name_or_path = "/models/flux1-dev.safetensors"  # kohya: one file

[trainers.ai-toolkit]
pretrained_model_name_or_path = "black-forest-labs/FLUX.1-dev"   # a diffusers folder or hub id

[trainers.ai-toolkit.model]                                     # ai-toolkit's own keys
quantize_te = true
arch = "flux"                                                   # instead of the family's arch
```

- **Plain keys** of `[trainers.<trainer>]` are profile options (kohya's names, as in every
  other section). Building for that trainer (`lorac build`, `lorac run`) puts each one in place
  of the shared value of that name, or adds it when no shared section sets it; other trainers
  get the shared value. Diagnostics about such a value point at its `[trainers]` line.
- **Sub-tables** hold a trainer's own keys, written as they are. For ai-toolkit:
  `model`, `train`, `network`, `save`, `sample`, `datasets` (every dataset entry) — each key
  one that section's config class reads — and `process` (the process entry: `trigger_word`,
  …). sd-scripts has no sub-tables: its values are plain options.
- **One value, one place**: an option equal to the shared value it replaces (LRC681), an
  ai-toolkit key that a profile option already writes (LRC684), a key the trainer does not
  read (LRC680 for ai-toolkit, LRC682 for kohya) and a table named after no trainer (LRC683)
  are lint findings; the ai-toolkit ones also stop `lorac build`.
- `lorac show PROFILE --trainer NAME` prints the values as that trainer gets them;
  `lorac diff final@kohya final@ai-toolkit` prints what differs between two trainers.
- The family decides ai-toolkit's `arch` (table below); `[trainers.ai-toolkit.model] arch`
  chooses another one. An arch ai-toolkit does not know is an error: ai-toolkit itself would
  train it as Stable Diffusion 1.x without a word.
"""


def trainer_table(profile: Profile, trainer: str) -> dict[str, Any]:
    """``[trainers.<trainer>]`` of ``profile`` (empty when absent or not a table)."""

    table = profile.get(SECTION, trainer)
    return table if isinstance(table, dict) else {}


def overrides(profile: Profile, trainer: str) -> dict[str, Any]:
    """The plain (option) keys of ``[trainers.<trainer>]``."""

    return {k: v for k, v in trainer_table(profile, trainer).items() if not isinstance(v, dict)}


def native(profile: Profile, trainer: str) -> dict[str, dict[str, Any]]:
    """The sub-tables of ``[trainers.<trainer>]`` (the trainer's own keys, by section)."""

    return {k: v for k, v in trainer_table(profile, trainer).items() if isinstance(v, dict)}


def for_trainer(profile: Profile, trainer: str) -> Profile:
    """``profile`` as ``trainer`` sees it: each option of ``[trainers.<trainer>]`` replaces the
    shared option of that name (in its section), or joins a section named after the trainer
    when no shared section sets it. The ``[trainers]`` table stays as it is."""

    values = overrides(profile, trainer)
    if not values:
        return profile
    data = dict(profile.data)
    provenance = dict(profile.provenance)
    shared = profile.options()
    for key, value in values.items():
        section = shared[key][1][0] if key in shared else trainer
        table = data.get(section)
        data[section] = {**(table if isinstance(table, dict) else {}), key: value}
        where = profile.provenance.get((SECTION, trainer, key))
        if where is not None:
            provenance[(section, key)] = where
    return dataclasses.replace(profile, data=data, provenance=provenance, _options=None)
