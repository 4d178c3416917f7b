"""How many modules a trainer wraps for a profile: what ``lorac run``'s check of a saved LoRA
expects, or why it cannot say.

Each backend's ``expected_modules(profile)`` returns ``(count, None)`` where lorac's knowledge
of that trainer gives the count, and ``(None, reason)`` everywhere else: an expectation is
never guessed. The helpers here are what the backends share.
"""

from __future__ import annotations

from typing import Any

#: ``network_args`` that change how a module trains, never which layers get one (sd-scripts
#: networks/lora_flux.py and musubi-tuner networks/lora.py read these and nothing about layers).
LAYER_NEUTRAL_ARGS = frozenset({
    "rank_dropout", "module_dropout", "verbose", "loraplus_lr_ratio", "loraplus_unet_lr_ratio",
    "loraplus_text_encoder_lr_ratio", "ggpo_beta", "ggpo_sigma",
})


def network_arg_names(value: Any) -> list[str]:
    """The keys of ``network_args`` (a list of ``key=value`` strings, or one)."""
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return [str(item).split("=", 1)[0].strip() for item in items if "=" in str(item)]


def layer_args(value: Any, neutral: frozenset[str] = LAYER_NEUTRAL_ARGS) -> list[str]:
    """The ``network_args`` keys that may change which layers get a LoRA."""
    return [k for k in network_arg_names(value) if k not in neutral]
