"""``lorac run``: build, lint gate, a fresh run folder, pre-flight checks, launch, manifest.

The stages are the ones ``lorac build`` uses (resolve → validate → emit) plus the whole lint
as a gate: errors stop the run before the GPU is touched unless ``--force``, which runs anyway
and records the findings in the manifest. The trainer's outputs are redirected into the run
folder (``runs/<profile>-<timestamp>/output``), which is never reused.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorac.config.profile import Profile
from lorac.core.console import Io
from lorac.core.diagnostics import ExitCode, LoracError, Severity, printable, render

#: The section lorac writes its run-time overrides into (a trainer-option section).
OVERRIDES = "lorac_run"
#: Options naming files that must exist before launch (the trainer reads them after minutes of
#: start-up: sample_prompts only when it caches the prompts' text-encoder outputs).
FILE_OPTIONS = ("pretrained_model_name_or_path", "clip_l", "t5xxl", "ae", "vae", "clip_g",
                "text_encoder", "sample_prompts", "network_weights", "dataset_config",
                "base_weights", "resume",
                # musubi-tuner's model files
                "dit", "dit_high_noise", "t5", "clip", "text_encoder1", "text_encoder2",
                "image_encoder", "byt5", "text_encoder_qwen", "text_encoder_clip")
MIN_FREE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class RunOptions:
    profile: str
    backend: str | None = None
    fmt: str | None = None
    dry_run: bool = False
    force: bool = False
    max_steps: int | None = None
    synthetic: bool = False
    synth_dir: str | None = None
    runs_dir: str | None = None
    display: str = "auto"


def new_run_dir(root: Path, name: str, now: dt.datetime | None = None) -> Path:
    """A fresh ``root/<name>-<timestamp>`` folder, created exclusively (never reused)."""

    from lorac.core.outputs import check_no_links

    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    check_no_links(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        check_no_links(root)
        for i in range(1000):
            candidate = root / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as exc:  # no permission, a read-only file system, a file in the way
        why = ("it exists and is not a folder" if isinstance(exc, FileExistsError) else
               "a part of that path is a file, not a folder"
               if isinstance(exc, NotADirectoryError) else exc.strerror or str(exc))
        raise LoracError(f"cannot create a run folder under {root}: {why}") from None
    raise LoracError(f"cannot create a new run folder under {root}")


def _set_option(profile: Profile, name: str, value: Any) -> None:
    """Set trainer option ``name`` where :meth:`Profile.options` reads it (the last section
    holding it), else in the :data:`OVERRIDES` section."""

    found = profile.options().get(name)
    if found:
        section, key = found[1]
        profile.data[section][key] = value
    else:
        profile.data.setdefault(OVERRIDES, {})[name] = value
    profile.changed()


#: Backends whose trainers write TensorBoard event files to ``logging_dir`` when ``log_with`` is
#: unset (sd-scripts library/accelerator_setup.py:92-96 at 37a1cbbc; musubi-tuner
#: training/accelerator_setup.py:59-61 at 30c658c4).
_TENSORBOARD_WHEN_LOGGING_DIR = ("kohya", "musubi")


def _log_to_run_folder(profile: Any, backend: str) -> bool:
    """Whether the run adds ``logging_dir`` inside its folder so that the report can draw the
    loss and the learning rate from the trainer's own event files: only where the profile logs
    nowhere, the trainer logs to TensorBoard by itself once a folder is named, and TensorBoard
    is installed. Logging changes nothing that is trained; the override is shown and recorded
    like the others."""

    return (backend in _TENSORBOARD_WHEN_LOGGING_DIR
            and profile.option("logging_dir") is None and profile.option("log_with") is None
            and tensorboard_installed())


def tensorboard_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _git_state() -> dict[str, Any]:
    if not shutil.which("git"):
        return {"commit": None, "dirty": None}

    def git(*args: str) -> str | None:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _dataset_dirs(profile: Profile) -> list[Path]:
    from lorac.scan.dataset import subsets_of

    # top-level [[dataset.subsets]] first, as this list has always been (the manifest's
    # dataset hash follows its order)
    specs = sorted(subsets_of(profile), key=lambda s: s.key_path[:2] != ("dataset", "subsets"))
    return [s.folder for s in specs]


def dataset_listing(profile: Profile) -> dict[str, Any]:
    """A hash of the dataset folders' listings (names, sizes, modification times)."""

    h = hashlib.sha256()
    count = 0
    for folder in _dataset_dirs(profile):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                st = path.stat()
                h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                count += 1
    return {"files": count, "sha256": h.hexdigest()}


def gpu_count() -> int | None:
    """Visible NVIDIA GPUs (NVML, honouring CUDA_VISIBLE_DEVICES), or None when unknown."""

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            total = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip()]) if visible.strip() else 0
    return int(total)


def preflight(profile: Profile, run_dir: Path, left_out: frozenset[Any] = frozenset()
              ) -> list[str]:
    """Problems that would make the trainer fail after start-up, as sentences. ``left_out``:
    key paths of options the backend does not pass to its trainer (LRC608), whose files the
    trainer never opens."""

    problems = []
    options = profile.options()
    for name in FILE_OPTIONS:
        if name in options and options[name][1] not in left_out:
            value, kp = options[name]
            values = value if isinstance(value, list) else [value]
            missing = [v for v in values if isinstance(v, str) and v and not v.startswith(
                ("http://", "https://")) and ("/" in v or "." in v) and not Path(v).exists()]
            for v in missing:
                where = profile.where(kp)
                problems.append(f"{name} = {v!r} does not exist ({where.location()})")
    for folder in _dataset_dirs(profile):
        if not folder.is_dir():
            problems.append(f"dataset folder {folder} does not exist")
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        problems.append(f"only {free / 1024**3:.1f} GiB free under {run_dir}; LoRA checkpoints "
                        f"and caches need at least {MIN_FREE_BYTES / 1024**3:.0f} GiB")
    wanted = profile.get("run", "gpus", default=1)
    have = gpu_count()
    if have is not None and isinstance(wanted, int) and wanted > have:
        problems.append(f"[run] gpus = {wanted} but {have} GPU(s) are visible")
    return problems


SYNTH_MARKER = "lorac-synth.json"


def record_synthetic(root: Path, family: str, trainer_args: dict[str, str],
                     env: dict[str, str] | None = None,
                     pythonpath: list[str] | None = None, trainer: str | None = None,
                     tiny: bool = False) -> None:
    """Mark ``root`` as a complete synthetic set (written last, after every checkpoint, and
    atomically: a killed write leaves no marker rather than a truncated one). ``env`` and
    ``pythonpath`` are what the trainer needs besides the options (musubi: its offline
    tokenizer cache, the ``av`` stand-in)."""
    from lorac.core.outputs import write_file

    record: dict[str, Any] = {"family": family, "complete": True, "trainer_args": trainer_args}
    if trainer:
        record["trainer"] = trainer
    if tiny:
        record["tiny"] = True
    if env:
        record["env"] = env
    if pythonpath:
        record["pythonpath"] = pythonpath
    write_file(root / SYNTH_MARKER, json.dumps(record, indent=2))


def _synth_module(family: str, backend: str | None = None) -> Any:
    """The synth module of the trainer that has synthetic checkpoints for ``family``: the
    ai-toolkit one for backend ``ai-toolkit`` (diffusers-format folders), else musubi's or
    kohya's by family."""
    if backend == "ai-toolkit":
        from lorac.trainers.ai_toolkit import synth as aitk_synth

        return aitk_synth
    from lorac.trainers.musubi import synth as musubi_synth

    if family in musubi_synth.FAMILIES:
        return musubi_synth
    from lorac.trainers.kohya import synth

    return synth


def synthetic_options(family: str, backend: str | None = None) -> tuple[str, ...]:
    """The trainer options a synthetic ``family`` set fills in."""
    from lorac.trainers.musubi import synth as musubi_synth

    if backend == "ai-toolkit":
        return ("pretrained_model_name_or_path",)

    if family in musubi_synth.FAMILIES:
        return tuple(c["option"] for c in musubi_synth.layout(family)["components"].values())
    return ("pretrained_model_name_or_path", "clip_l", "t5xxl", "ae")


def make_synthetic(family: str, root: Path, *, tiny: bool = False,
                   device: str = "auto", backend: str | None = None) -> Any:
    """Write a synthetic ``family`` set into ``root`` (on the GPU when there is one, for
    ``device="auto"``) and mark it complete; a :class:`LoracError` without torch.

    ``root`` must be new, empty, or a synthetic set lorac wrote (it holds
    :data:`SYNTH_MARKER`, written first with ``"complete": false``): a folder of real
    checkpoints is never overwritten with random weights."""
    from lorac.core.outputs import check_folder, check_no_links, write_file

    synth = _synth_module(family, backend)
    check_no_links(root)
    check_folder(root, SYNTH_MARKER, replace=False)
    try:
        import torch
    except ImportError as exc:
        raise LoracError("synthetic checkpoints need the gpu extra "
                         "(pip install 'lorac[gpu]')") from exc
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if family not in synth.FAMILIES:
        raise LoracError(f"no synthetic checkpoints for family {family!r}; known: "
                         f"{', '.join(synth.FAMILIES)}")
    trainer = _trainer_of(synth)
    if not (root / SYNTH_MARKER).is_file():  # claim the folder before the first checkpoint
        write_file(root / SYNTH_MARKER, json.dumps({"family": family, "trainer": trainer,
                                                    "complete": False}))
    try:
        made = synth.write_synthetic(family, root, tiny=tiny, device=device)
    except ValueError as exc:
        raise LoracError(str(exc)) from None
    record_synthetic(root, family, made.trainer_args(),
                     made.trainer_env() if hasattr(made, "trainer_env") else None,
                     made.pythonpath() if hasattr(made, "pythonpath") else None,
                     trainer=trainer, tiny=bool(getattr(made, "tiny", False)))
    return made


def _trainer_of(synth: Any) -> str:
    """The backend name of a synth module (``lorac.trainers.ai_toolkit.synth``: ai-toolkit)."""
    return synth.__name__.split(".")[-2].replace("_", "-")


def _synth_record(root: Path) -> dict[str, Any]:
    """The marker of the synthetic set in ``root`` ({} when there is none or it is unreadable)."""
    try:
        return dict(json.loads((root / SYNTH_MARKER).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


def _synthetic_env(root: Path) -> dict[str, str]:
    """The variables a synthetic set's marker asks for, ``PYTHONPATH`` extended (not replaced)
    by its folders."""
    recorded = json.loads((root / SYNTH_MARKER).read_text(encoding="utf-8"))
    env = dict(recorded.get("env") or {})
    extra = recorded.get("pythonpath") or []
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p] + extra)
    return env


def _synth_root(profile: Profile, synth_dir: str | None, backend: str | None = None) -> Path:
    family = profile.family or "flux1-dev"
    default = Path(".lorac_cache") / "synth" / family
    if backend == "ai-toolkit":  # another layout of the same family
        default = Path(".lorac_cache") / "synth" / backend / family
    return Path(synth_dir or os.environ.get("LORAC_SYNTH_DIR") or default)


def _synthetic_set(profile: Profile, synth_dir: str | None, io: Io,
                   backend: str | None = None) -> dict[str, str]:
    family = profile.family or "flux1-dev"
    root = _synth_root(profile, synth_dir, backend)
    marker = root / SYNTH_MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("family") != family:
            raise LoracError(f"{root} holds a synthetic {recorded.get('family')} set, not "
                             f"{family}")
        wanted = _trainer_of(_synth_module(family, backend))
        if recorded.get("trainer", wanted) != wanted:
            raise LoracError(f"{root} holds a synthetic {family} set for "
                             f"{recorded['trainer']}, not for {wanted}")
        if recorded.get("trainer_args"):  # complete; else an interrupted write: write again
            return recorded["trainer_args"]
    io.err.write(f"lorac: writing synthetic {family} checkpoints to {root} (once)\n")
    made = make_synthetic(family, root, backend=backend)
    io.err.write(f"lorac: {made.bytes_written / 1e9:.1f} GB in {made.seconds:.0f} s\n")
    return made.trainer_args()


def check_output_names(profile: Profile) -> None:
    """Refuse a run whose trainer would write outside its run folder: the output folders are
    replaced by ones inside it, so what could leave it are the names joined onto them
    (:data:`lorac.core.outputs.OUTPUT_NAMES`). Not even ``--force`` gets past this."""
    from lorac.core.outputs import OUTPUT_NAMES, output_name_problem, quoted

    options = profile.options()
    for name in OUTPUT_NAMES:
        if name in options:
            value, kp = options[name]
            why = output_name_problem(name, value)
            if why is not None:
                where = profile.where(kp).location()
                raise LoracError(f"{name} = {quoted(value)} ({where}) {why}; nothing was "
                                 "launched (--force does not override this)")


def run_profile(opts: RunOptions, io: Io) -> int:
    from lorac.config.settings import load_settings
    from lorac.config.validate import run_section
    from lorac.config.values import leaves_with_provenance
    from lorac.core.outputs import RUN_FOLDER_PATHS, safe_join, write_file
    from lorac.core.secrets import environment_secrets, redact_data, scrub, secret_values
    from lorac.lint.driver import lint, profile_path
    from lorac.lint.plugins import get_plugins
    from lorac.run.manifest import sha256_file
    from lorac.run.process import launch
    from lorac.trainers import run_env
    from lorac.trainers.build import choose_backend
    from lorac.trainers.checkout import ENV, configured_checkout

    settings = load_settings(Path.cwd())
    plugins = get_plugins()
    path = profile_path(opts.profile, settings)
    report = lint([path], settings, plugins)
    findings = report.diagnostics
    errors = [d for d in findings if d.severity >= Severity.ERROR]
    if findings:
        io.err.write(render(findings, "text"))
    if errors and not opts.force:
        io.err.write(f"lorac: {len(errors)} error(s); nothing was launched (--force runs "
                     "anyway and records them in the manifest)\n")
        return int(ExitCode.FINDINGS)
    resolution = next(iter(r for r in report.resolutions.values()
                           if r.profile is not None and Path(r.profile.path).resolve()
                           == path.resolve()), None)
    if resolution is None or resolution.profile is None:
        raise LoracError(f"profile {opts.profile!r} could not be resolved")
    profile = copy.deepcopy(resolution.profile)
    run_settings = run_section(profile)  # even --force launches nothing from a broken [run]

    backend, fmt = choose_backend(plugins, profile, opts.backend, opts.fmt)
    if not hasattr(backend, "launch_argv"):
        raise LoracError(f"backend {backend.name} cannot launch a trainer")
    if opts.synthetic:  # a synthetic set is written in the layout of one trainer's loaders
        trainer = _trainer_of(_synth_module(profile.family or "flux1-dev", backend.name))
        if backend.name != trainer:
            raise LoracError(f"--synthetic writes {trainer}'s checkpoints for family "
                             f"{profile.family or 'flux1-dev'}; backend {backend.name} cannot "
                             "use them")
    from lorac.config.trainer_values import for_trainer

    profile = for_trainer(profile, backend.name)  # its [trainers.<name>] values in place
    check_output_names(profile)

    runs_root = Path(opts.runs_dir or run_settings.get("runs_dir") or "runs")
    run_dir = (runs_root / f"{profile.name}-DRY-RUN") if opts.dry_run else new_run_dir(
        runs_root, profile.name)
    staged = False
    try:  # until the trainer is launched, any way out removes the fresh run folder
        # every output path the profile sets goes into the run folder (output_dir always)
        overrides: dict[str, Any] = {
            name: str((run_dir / inside).resolve()) for name, inside in RUN_FOLDER_PATHS.items()
            if name == "output_dir" or profile.option(name) is not None}
        if opts.max_steps is not None:
            overrides["max_train_steps"] = opts.max_steps
        if _log_to_run_folder(profile, backend.name):
            overrides["logging_dir"] = str((run_dir / RUN_FOLDER_PATHS["logging_dir"]).resolve())
        env = run_env(profile)  # the names lint refuses (LRC209) stop even a --force run
        if opts.synthetic:
            overrides.update(
                dict.fromkeys(synthetic_options(profile.family or "flux1-dev", backend.name),
                              "<synthetic>")
                if opts.dry_run else _synthetic_set(profile, opts.synth_dir, io, backend.name))
            env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
            if not opts.dry_run:
                env.update(_synthetic_env(_synth_root(profile, opts.synth_dir, backend.name)))
        for name, value in overrides.items():
            _set_option(profile, name, value)

        artifacts = backend.emit(profile, fmt)
        env = {**getattr(artifacts, "env", {}), **env}
        emit_errors = [d for d in artifacts.diagnostics if d.severity >= Severity.ERROR]
        if artifacts.diagnostics:
            io.err.write(render(artifacts.diagnostics, "text"))
        if emit_errors and not opts.force:
            io.err.write("lorac: the backend reported errors; nothing was launched\n")
            return int(ExitCode.FINDINGS)

        try:
            checkout = configured_checkout(settings, backend.name)
            trainer_path: Path | str = checkout.path
            warning = checkout.warning()
        except LoracError:
            if not opts.dry_run:
                raise
            checkout, warning = None, None
            trainer_path = f"${ENV.get(backend.name, 'LORAC_SD_SCRIPTS')}"
        argv = backend.launch_argv(artifacts.argv, trainer_path, run_dir.resolve())
        plan: dict[str, Any] | None = None
        if getattr(artifacts, "steps", None) and hasattr(backend, "run_plan"):
            # several commands (musubi-tuner): lorac.run.steps runs them as one process
            plan, plan_extra = backend.run_plan(profile, artifacts, trainer_path,
                                                run_dir.resolve(),
                                                checkout.commit if checkout else None)
            artifacts.files["steps.json"] = json.dumps(plan, indent=1, ensure_ascii=False)
            argv = [sys.executable, "-m", "lorac.run.steps",
                    str(run_dir.resolve() / "steps.json")]
        if warning:
            io.err.write(f"lorac: warning: {printable(warning)}\n")

        # credentials the trainer gets (options and [run.env], this environment): never printed
        known = secret_values(profile.data) | environment_secrets()
        if opts.dry_run:
            if plan is not None:
                for step in plan["steps"]:
                    skip = f"  # skipped: {step['skip']}" if step.get("skip") else ""
                    io.out.write(printable(scrub(shlex.join(step["argv"]), known)) + skip + "\n")
            else:
                io.out.write(printable(scrub(shlex.join(argv), known)) + "\n")
            io.out.write(f"\nfiles ({printable(run_dir)}/ when run):\n")
            for name in sorted(artifacts.files):
                io.out.write(f"  {printable(name)}\n")
            for name, value in overrides.items():
                io.out.write(printable(scrub(f"override: {name} = {value}", known)) + "\n")
            return 0
        assert checkout is not None  # only a dry run goes on without one

        left_out = frozenset(d.key_path for d in artifacts.diagnostics
                             if d.code == "LRC608" and d.key_path)
        problems = preflight(profile, run_dir, left_out)
        if problems and not opts.force:
            for p in problems:
                io.err.write(f"lorac: pre-flight: {printable(p)}\n")
            io.err.write("lorac: nothing was launched\n")
            return int(ExitCode.USAGE)

        for name, text in artifacts.files.items():
            write_file(safe_join(run_dir, name), text,
                       mode=0o755 if name in artifacts.executable else None)
        inputs = {
            "profile_files": {p: sha256_file(Path(p)) for p in profile.chain},
            "compiled_files": {n: hashlib.sha256(t.encode()).hexdigest()
                               for n, t in sorted(artifacts.files.items())},
            "dataset": dataset_listing(profile),
        }
        extra = {
            "profile": {"name": profile.name, "path": profile.path,
                        "chain": list(profile.chain), "data": redact_data(profile.data, known),
                        "provenance": leaves_with_provenance(profile),
                        "overrides": {k: scrub(str(v), known) for k, v in overrides.items()}},
            "inputs": inputs,
            "lint": {"forced": bool(errors or emit_errors) and opts.force,
                     "findings": [d.to_json() for d in findings + artifacts.diagnostics]},
            "trainer": {"backend": backend.name, "format": fmt, "pin": checkout.pinned,
                        "checkout": str(checkout.path), "commit": checkout.commit},
            "git": _git_state(),
            "lorac_command": ["lorac", *sys.argv[1:]],
            "synthetic": opts.synthetic,
        }
        if plan is not None:
            extra["steps"] = [{"name": s["name"], "command": [scrub(str(a), known)
                                                              for a in s["argv"]],
                               "skipped": s.get("skip")} for s in plan["steps"]]
            extra.update(plan_extra)
        staged = True
    finally:
        if not staged and not opts.dry_run:
            shutil.rmtree(run_dir, ignore_errors=True)

    io.err.write(f"lorac: run folder {printable(run_dir)}\n")
    extra["vram_prediction"] = _vram_prediction(profile)
    result = launch(argv, run_dir, env=env, display=opts.display, manifest_extra=extra,
                    secrets=known, on_tick=_live_report(run_dir), tick_s=REPORT_EVERY_S,
                    parser=_parser(backend.name, artifacts.options))
    io.err.write(f"lorac: {result.status} (exit {result.exit_code}); manifest "
                 f"{printable(result.manifest_path)}\n")
    code = int(result.exit_code)
    if result.status in ("succeeded", "stopped"):
        expected: tuple[int | None, str | None] | None = None
        if backend.name == "ai-toolkit":
            # from the job already built (the backend's expected_modules would build it again);
            # lorac's tiny synthetic sets (CPU tests) have fewer blocks than the real model
            from lorac.trainers.ai_toolkit.emitter import module_count

            tiny = opts.synthetic and bool(_synth_record(
                _synth_root(profile, opts.synth_dir, backend.name)).get("tiny"))
            expected = module_count(profile, artifacts.options, tiny=tiny)
        code = _check_outputs(profile, backend, run_dir, result.manifest_path, code, io,
                              expected)
    _final_report(run_dir, io)
    if result.status == "interrupted":
        return int(ExitCode.INTERRUPTED)
    return code


def _parser(backend: str, options: Any) -> Any:
    """The progress parser for ``backend``'s output: ai-toolkit's training bar is named after
    its job (``config.name`` of the YAML)."""
    from lorac.run.progress import ProgressParser

    if backend == "ai-toolkit" and isinstance(options, dict):
        name = (options.get("config") or {}).get("name")
        return ProgressParser("ai-toolkit", str(name)) if name else ProgressParser("ai-toolkit")
    return ProgressParser()


#: Seconds between rewrites of report.html while the trainer runs.
REPORT_EVERY_S = 5.0


def _vram_prediction(profile: Profile) -> dict[str, Any] | None:
    """``lorac vram``'s prediction for the page: peak, its phase and every phase (MiB); None
    where the memory model does not cover the profile."""

    if profile.backend != "kohya" or not (profile.family or "").startswith("flux1"):
        return None
    try:
        from lorac.trainers.kohya import vram

        est = vram.estimate(vram.config_from_profile(profile))
    except Exception:  # the prediction is an extra on the page, never a reason to stop a run
        return None
    return {"peak_mib": round(est.peak_mib, 1), "peak_phase": est.peak_phase,
            "phases": {k: round(v, 1) for k, v in est.phases.items()}}


def _live_report(run_dir: Path) -> Any:
    """The ``on_tick`` of :func:`lorac.run.process.launch`: rewrite report.html from the
    manifest on disk and the live telemetry."""

    def tick(live: dict[str, Any]) -> None:
        from lorac.run.manifest import read_manifest
        from lorac.run.report import write_report

        try:
            manifest = read_manifest(run_dir / "manifest.json")
            manifest.update(live)
            write_report(run_dir, manifest)
        except (OSError, ValueError, LoracError):
            pass  # the next tick, or the final write, tries again

    return tick


def _final_report(run_dir: Path, io: Io) -> None:
    from lorac.run.report import write_report

    try:
        path = write_report(run_dir)
    except LoracError as exc:
        io.err.write(f"lorac: warning: no report: {printable(exc.message)}\n")
        return
    io.err.write(f"lorac: report {printable(path)}\n")


def _check_outputs(profile: Profile, backend: Any, run_dir: Path, manifest_path: Path,
                   code: int, io: Io,
                   expected: tuple[int | None, str | None] | None = None) -> int:
    """Inspect what the run saved (:mod:`lorac.run.check`); a problem marks the manifest
    (status ``check failed``, the reasons under ``lora_check``) and the exit code."""

    from lorac.run.check import check_run_outputs
    from lorac.run.manifest import read_manifest, write_manifest

    check = check_run_outputs(profile, run_dir, backend, expected)
    manifest = read_manifest(manifest_path)
    manifest["lora_check"] = check
    for entry in check["files"]:
        alpha = entry.get("alpha")
        shown = f"{alpha:g}" if isinstance(alpha, float) else alpha
        count = f"{entry['modules']} modules" if check["expected_modules"] is not None else \
            f"{entry['modules']} modules (unknown count: {check['expected_modules_unknown']})"
        state = "; ".join(entry["problems"]) or (
            f"rank {entry['rank']}, alpha {shown}, {count}: ok")
        io.err.write(f"lorac: check {printable(entry['path'])}: {printable(state)}\n")
    if check["problems"]:
        manifest["status"] = "check failed"
        code = code or int(ExitCode.FINDINGS)
        manifest["exit_code"] = code
    write_manifest(manifest_path, manifest)
    return code


# --------------------------------------------------------------------------- runs


def _manifests(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    if not root.is_dir():
        return out
    for folder in sorted(root.iterdir()):
        path = folder / "manifest.json"
        if path.is_file():
            try:
                out.append((folder, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                out.append((folder, {"status": "unreadable manifest"}))
    return out


def _peak(manifest: dict[str, Any]) -> str:
    peaks = (manifest.get("telemetry") or {}).get("peak_mib")  # {gpu: MiB}
    if not isinstance(peaks, dict):
        return "-"
    values = [v for v in peaks.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return f"{max(values):,.0f} MiB" if values else "-"


def list_runs(runs_dir: str | None, io: Io) -> int:
    root = Path(runs_dir or "runs")
    runs = _manifests(root)
    if not runs:
        io.err.write(f"no runs under {printable(root)}\n")
        return 0
    for folder, m in runs:
        duration = m.get("duration_s")
        io.out.write(f"{printable(folder.name):<40} {printable(m.get('status', '?')):<12} "
                     f"{(f'{duration:.0f} s' if isinstance(duration, (int, float)) else '-'):>8}"
                     f"  peak {_peak(m)}\n")
    return 0


def find_run(run_id: str, runs_dir: str | None) -> tuple[Path, dict[str, Any]]:
    """The run folder ``run_id`` names (whole, or a prefix that names one) and its manifest."""

    root = Path(runs_dir or "runs")
    runs = _manifests(root)
    matches = [(f, m) for f, m in runs if f.name == run_id] or \
              [(f, m) for f, m in runs if f.name.startswith(run_id)]
    if not matches:
        raise LoracError(f"no run {run_id!r} under {root}")
    if len(matches) > 1:
        raise LoracError(f"{run_id!r} matches {len(matches)} runs: "
                         + ", ".join(f.name for f, _ in matches))
    return matches[0]


def report_run(run_id: str, runs_dir: str | None, io: Io) -> int:
    """``lorac runs report ID``: (re)write the run's report.html."""

    from lorac.run.report import write_report

    folder, m = find_run(run_id, runs_dir)
    if m.get("status") == "unreadable manifest":
        raise LoracError(f"{folder}/manifest.json: unreadable manifest")
    io.out.write(f"{printable(write_report(folder, m))}\n")
    return 0


def compare_runs(a: str, b: str, runs_dir: str | None, output: str | None, io: Io) -> int:
    """``lorac runs compare A B``: one page with both runs."""

    from lorac.core.outputs import write_file
    from lorac.run.report import render_compare

    fa, _ = find_run(a, runs_dir)
    fb, _ = find_run(b, runs_dir)
    target = Path(output) if output else \
        Path(runs_dir or "runs") / f"compare-{fa.name}-{fb.name}.html"
    write_file(target, render_compare(fa, fb))
    io.out.write(f"{printable(target)}\n")
    return 0


def show_run(run_id: str, runs_dir: str | None, fmt: str, io: Io) -> int:
    folder, m = find_run(run_id, runs_dir)
    if fmt == "json":
        from lorac.core.secrets import known_secrets, redact_data

        shown = redact_data(m, known_secrets())
        io.out.write(json.dumps(shown, indent=2, ensure_ascii=False) + "\n")
        return 0
    io.out.write(printable(f"run      {folder}") + "\n" + printable(
        f"status   {m.get('status')} (exit {m.get('exit_code')})") + "\n" + printable(
        f"started  {m.get('started_at')}") + "\n" + printable(
        f"duration {m.get('duration_s')} s") + "\n")
    command = shlex.join(str(a) for a in m.get("command") or [])
    io.out.write(f"command  {printable(command)}\n")
    progress = m.get("progress") or {}
    io.out.write(printable(f"progress step {progress.get('step')}/{progress.get('total')}, "
                           f"{progress.get('sec_per_it')} s/it, loss {progress.get('loss')}")
                 + "\n")
    io.out.write(f"peak     {_peak(m)}\n")
    for out in m.get("outputs") or []:
        io.out.write(printable(f"  {out.get('path')}  {out.get('bytes')} bytes  "
                               f"{str(out.get('sha256'))[:12]}") + "\n")
    return 0
