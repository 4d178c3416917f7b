"""Precision and recall of lorac's findings on the real-world corpus (``tests/corpus/wild``).

Usage: ``python bench/wild_corpus.py``

Runs ``lorac import`` / ``build`` / ``lint`` on every file as ``tests/test_wild_corpus.py``
does and compares the findings with the true ones of ``tests/corpus/wild/expected.toml``:
a finding lorac gives that is not true is a false positive, a true one it does not give is a
false negative. Known gaps count as errors like any other. Prints the corpus by format,
trainer and family, then precision and recall overall and per trainer, and the files that do
not import or whose profile does not build.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.wild_corpus import expected_findings, load_expected, run_corpus

TRAINER = {"kohya-toml": "sd-scripts", "kohya-gui": "sd-scripts", "shell": "sd-scripts",
           "ai-toolkit": "ai-toolkit", "musubi": "musubi-tuner"}
FORMAT = {".toml": "kohya TOML", ".json": "kohya_ss GUI JSON", ".yaml": "ai-toolkit YAML",
          ".yml": "ai-toolkit YAML", ".sh": "shell launcher", ".bat": ".bat launcher"}


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "n/a"


def main() -> int:
    expected = {e["path"]: e for e in load_expected()["file"]}
    outcomes = run_corpus()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    print(f"corpus: {len(outcomes)} files")
    for label, key in (("format", lambda r, o: FORMAT.get(Path(r).suffix, Path(r).suffix)),
                       ("trainer", lambda r, o: TRAINER.get(o.kind, o.kind or "?")),
                       ("family", lambda r, o: o.family or "(none)")):
        tally = Counter(key(r, o) for r, o in outcomes.items())
        print(f"  by {label}: " + ", ".join(f"{k} {n}" for k, n in sorted(tally.items())))
    for rel, got in outcomes.items():
        truth = expected_findings(expected[rel])
        trainer = TRAINER.get(got.kind, got.kind or "?")
        for group in ("all", trainer):
            c = counts[group]
            c["tp"] += len(got.findings & truth)
            c["fp"] += len(got.findings - truth)
            c["fn"] += len(truth - got.findings)
            c["files"] += 1
            c["imported"] += got.imported
            c["import_wrong"] += got.imported is not expected[rel]["imports"]
            c["built"] += bool(got.built)
            c["build_failed"] += got.built is False
    print()
    print(f"{'trainer':<14}{'files':>6}{'TP':>6}{'FP':>6}{'FN':>6}{'precision':>11}"
          f"{'recall':>8}{'no build':>10}")
    for group in ["all", *sorted(g for g in counts if g != "all")]:
        c = counts[group]
        print(f"{group:<14}{c['files']:>6}{c['tp']:>6}{c['fp']:>6}{c['fn']:>6}"
              f"{_ratio(c['tp'], c['tp'] + c['fp']):>11}{_ratio(c['tp'], c['tp'] + c['fn']):>8}"
              f"{c['build_failed']:>10}")
    print()
    for rel, got in outcomes.items():
        truth = expected_findings(expected[rel])
        if not got.imported:
            print(f"not imported: {rel}: {got.reason}")
        elif got.built is False:
            print(f"does not build: {rel}: {got.build_error}")
        for f in sorted(got.findings - truth):
            print(f"false positive: {rel}: {f} {got.messages.get(f, '')[:100]}")
        for f in sorted(truth - got.findings):
            print(f"false negative: {rel}: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
