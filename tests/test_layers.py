"""Layering rules checked on a fresh interpreter: what importing a layer must not drag in."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of `prefixes` that `statement` leaves imported in a fresh interpreter."""
    code = (f"import sys; {statement}; "
            f"print('\\n'.join(m for m in sys.modules if m.startswith({prefixes!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.split()


def test_scoring_never_imports_the_synthetic_generator():
    loaded = loaded_after("import mepbench.scoring, mepbench.scoring.calibration",
                          ("mepbench.synth", "scipy.signal", "torch"))
    assert loaded == [], f"importing mepbench.scoring loads {loaded}"


def test_the_generator_reads_its_vocabulary_from_scoring():
    from mepbench.scoring import vocabulary
    from mepbench.synth import cues

    assert cues.VOCABULARY is vocabulary.VOCABULARY and cues.SUBTITLES is vocabulary.SUBTITLES
    assert set(vocabulary.SUBTITLES) == set(cues.EMOTIONS) - {"neutral"}
