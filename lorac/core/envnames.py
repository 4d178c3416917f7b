"""Which environment variable names ``[run.env]`` may set.

``[run.env]`` is the trainer's environment. A name there is refused (LRC209, at the key's
position; a one-line error when a backend is asked to emit anyway) when it is not a name a
shell or ``execve`` environment can carry, or when something between lorac and the trainer owns
it — the shell, the launcher, or lorac itself — so that a value there would kill the launch
script, change every shell the trainer starts, be overwritten, or quietly not do what it says:

* **bash** (Bash Reference Manual, 5.2 "Bash Variables"; bash 5.2's ``variables.c``):
  the read-only ``SHELLOPTS``, ``BASHOPTS``, ``BASH_VERSINFO``, ``EUID``, ``UID``, ``PPID``
  (assigning one stops a script: ``SHELLOPTS: readonly variable``); the ones every bash
  imports from its environment and that change how it parses and runs (``SHELLOPTS``,
  ``BASHOPTS``, ``BASH_ENV`` — a file every non-interactive bash sources —, ``ENV``,
  ``CDPATH``, ``GLOBIGNORE``, ``POSIXLY_CORRECT``, ``PS4``, ``BASH_XTRACEFD``,
  ``BASH_COMPAT``); and the ones bash sets itself (``IFS``, ``PWD``, ``OLDPWD``, ``SHLVL``,
  ``RANDOM``, ``SECONDS``, ``LINENO``, ``BASHPID``, …). Every name starting with ``BASH`` is
  bash's.
* **accelerate launch** (accelerate ``src/accelerate/utils/launch.py``,
  ``prepare_simple_launcher_cmd_env`` and ``prepare_multi_gpu_env``) writes
  ``ACCELERATE_MIXED_PRECISION``, ``ACCELERATE_USE_CPU``, ``ACCELERATE_DYNAMO_*``,
  ``ACCELERATE_USE_*``, ``OMP_NUM_THREADS`` (from ``--num_cpu_threads_per_process``),
  ``MASTER_ADDR`` and ``MASTER_PORT`` into the trainer's environment from its own options,
  which ``[run]`` sets; user-facing ones such as ``ACCELERATE_LOG_LEVEL`` stay allowed.
* **torch.distributed.run** (torchrun, which accelerate runs for several processes;
  ``torch/distributed/elastic/agent/server/local_elastic_agent.py``, ``_start_workers``) sets
  ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``,
  ``GROUP_WORLD_SIZE``, ``ROLE_RANK``, ``ROLE_NAME``, ``ROLE_WORLD_SIZE``, ``MASTER_ADDR``,
  ``MASTER_PORT`` and ``TORCHELASTIC_*`` for each process.
* **lorac** reads ``LORAC_*`` (``LORAC_SD_SCRIPTS``, ``LORAC_AI_TOOLKIT``, …) from the
  environment *it* — or ``train.sh`` — runs in; in ``[run.env]`` such a name would only reach
  the trainer and choose nothing.

``PATH``, ``HOME``, ``CUDA_VISIBLE_DEVICES``, ``LD_LIBRARY_PATH`` and the like stay allowed:
they are the trainer's to have, and both ``lorac run`` and ``train.sh`` look the launcher up
with the ``PATH`` the trainer gets.
"""

from __future__ import annotations

import re

_VALID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_BASH_READONLY = frozenset({"SHELLOPTS", "BASHOPTS", "BASH_VERSINFO", "EUID", "UID", "PPID"})
_BASH_IMPORTED = frozenset({"BASH_ENV", "ENV", "CDPATH", "GLOBIGNORE", "POSIXLY_CORRECT", "PS4",
                            "BASH_XTRACEFD", "BASH_COMPAT"})
_BASH_OWN = frozenset({"IFS", "PWD", "OLDPWD", "SHLVL", "RANDOM", "SRANDOM", "SECONDS",
                       "LINENO", "EPOCHSECONDS", "EPOCHREALTIME", "GROUPS", "FUNCNAME",
                       "PIPESTATUS", "DIRSTACK", "HISTCMD", "_"})

#: what accelerate derives from its own options, with the [run] key that sets it
_ACCELERATE = {"ACCELERATE_MIXED_PRECISION": "mixed_precision",
               "OMP_NUM_THREADS": "num_cpu_threads_per_process",
               "MASTER_ADDR": "main_process_ip", "MASTER_PORT": "main_process_port"}
_ACCELERATE_NAMES = frozenset({"ACCELERATE_DEBUG_MODE", "ACCELERATE_CPU_AFFINITY",
                               "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
                               "ACCELERATE_GRADIENT_CLIPPING", "ACCELERATE_CONFIG_DS_FIELDS"})
_ACCELERATE_PREFIXES = ("ACCELERATE_USE_", "ACCELERATE_DYNAMO_", "ACCELERATE_FP8_",
                        "ACCELERATE_DEEPSPEED_")
_TORCHRUN = frozenset({"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                       "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE"})


def problem(name: str) -> tuple[str, str] | None:
    """Why ``[run.env]`` may not set ``name`` and what to do instead (``(message, hint)``), or
    None when it may. The message quotes the name with ``repr``; printing masks and escapes it.
    """

    if not _VALID.fullmatch(name):
        return (f"[run.env] name {name!r} is not a valid environment variable name",
                "use letters, digits and _, not starting with a digit")
    if name in _BASH_READONLY:
        return (f"[run.env] {name} is read-only in bash: setting it stops a launch script, and "
                "every bash the trainer starts reads it", f"remove {name} from [run.env]")
    if name in _BASH_IMPORTED or name.startswith("BASH"):
        return (f"[run.env] {name} is bash's: every shell the trainer starts would read it and "
                "run differently", f"remove {name} from [run.env]")
    if name in _BASH_OWN:
        return (f"[run.env] {name} is set by the shell itself; a value here is overwritten or "
                "misleads", f"remove {name} from [run.env]")
    if name in _ACCELERATE:
        return (f"[run.env] {name} is set by accelerate launch from its own options; this value "
                "is overwritten", f"set [run] {_ACCELERATE[name]} instead")
    if name in _ACCELERATE_NAMES or name.startswith(_ACCELERATE_PREFIXES):
        return (f"[run.env] {name} is set by accelerate launch from its own options; this value "
                "is overwritten", "pass the accelerate option in [run] accelerate_args instead")
    if name in _TORCHRUN or name.startswith("TORCHELASTIC_"):
        return (f"[run.env] {name} is set by the distributed launcher for each process",
                "set [run] gpus, num_machines and machine_rank instead")
    if name.startswith("LORAC_"):
        return (f"[run.env] {name} is read by lorac and train.sh from the environment they run "
                "in; here it would only reach the trainer",
                f"export {name}=… where lorac or train.sh runs")
    return None
