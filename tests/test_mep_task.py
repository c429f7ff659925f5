"""MEP metrics on mep-synth with scripted responders: an oracle, a hallucinator and an always-"no" model."""

import json
import re

import pytest

from conftest import ScriptedBackend
from helpers import copy_builtin_spec
from mepbench.backends.base import Capabilities
from mepbench.masking import MaskMode
from mepbench.runner import EvalConfig, run_eval
from mepbench.types import Modality, Request, Response, TextPart

PROBE = re.compile(r"Does the (video show|audio contain) (.+?)\?")


class Responder(ScriptedBackend):
    """Answers the emotion question with the sample's reference reasoning and probes by `policy`."""

    def __init__(self, reasoning: dict[str, str], policy: str, feature_masking: bool = True):
        super().__init__(capabilities=Capabilities(feature_masking=feature_masking))
        self.reasoning, self.policy = reasoning, policy

    def _sees(self, request: Request, modality: Modality) -> bool:
        parts = [p for p in request.media_parts() if p.type == modality.value and not p.blank]
        return bool(parts) and modality not in request.zero_features

    def generate(self, requests):
        self.asked.extend(requests)
        out = []
        for r in requests:
            probe = PROBE.search(r.messages[-1].text())
            if probe is None:
                out.append(Response(text=self.reasoning[r.sample_id]))
                continue
            modality = Modality.VIDEO if probe.group(1).startswith("video") else Modality.AUDIO
            answer = {"oracle": "yes" if self._sees(r, modality) else "no", "hallucinator": "Yes, clearly.",
                      "always-no": "No."}[self.policy]
            out.append(Response(text=answer))
        return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("mep")
    specs = copy_builtin_spec(root / "specs", "mini-mep", n=24, mep=True)
    config = EvalConfig(tasks=["mini-mep"], include_paths=[specs], cache_dir=root / "cache", bootstrap=200)
    first = run_eval(config, backend=ScriptedBackend(answer="x"))  # generates the suite
    manifest = next((root / "cache" / "data").glob("mep-synth-*n24*")) / "manifest.jsonl"
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    return root, specs, {r["id"]: r for r in rows}, first


def _run(root, specs, backend, **kw):
    config = EvalConfig(tasks=["mini-mep"], include_paths=[specs], cache_dir=root / "cache", bootstrap=200,
                        use_cache=False, **kw)
    return run_eval(config, backend=backend).tasks["mini-mep"]


def test_oracle_scores_one_everywhere(synth):
    root, specs, manifest, _ = synth
    agg = _run(root, specs, Responder({k: v["reasoning"] for k, v in manifest.items()}, "oracle"))
    s = agg["summary"]
    assert s["emotion_accuracy"] == 1.0 and s["utilization_recall"] == 1.0
    assert s["acc_at_v"] == s["acc_at_a"] == s["control_acc_v"] == s["control_acc_a"] == 1.0
    assert s["balanced_faithfulness_v"] == 1.0
    assert agg["utilization"]["n_failed"] == 0


def test_hallucinator_fails_masked_probes_but_passes_controls(synth):
    root, specs, manifest, _ = synth
    s = _run(root, specs, Responder({k: v["reasoning"] for k, v in manifest.items()}, "hallucinator"))["summary"]
    assert s["acc_at_v"] == s["acc_at_a"] == 0.0 and s["control_acc_v"] == s["control_acc_a"] == 1.0
    assert s["balanced_faithfulness_v"] == s["balanced_faithfulness_a"] == 0.5


def test_always_no_is_exposed_by_controls(synth):
    root, specs, manifest, _ = synth
    s = _run(root, specs, Responder({k: v["reasoning"] for k, v in manifest.items()}, "always-no"))["summary"]
    assert s["acc_at_v"] == s["acc_at_a"] == 1.0 and s["control_acc_v"] == s["control_acc_a"] == 0.0
    assert s["balanced_faithfulness_v"] == s["balanced_faithfulness_a"] == 0.5


def test_probe_counts_and_cells_are_built_as_documented(synth):
    root, specs, manifest, first = synth
    expected = {m: sum(min(2, len(r["cues"][m])) for r in manifest.values()) for m in ("video", "audio")}
    f = first.tasks["mini-mep"]["faithfulness"]
    assert f["video"]["masked"]["n"] == f["video"]["control"]["n"] == expected["video"]
    assert f["audio"]["masked"]["n"] == expected["audio"]
    probe = next(i for i in first.items if i.item == "probe:audio:0")
    assert probe.variant == "mask:audio" and probe.target["expected"] == "no"
    assert probe.request.zero_features == {Modality.AUDIO}, "mep-synth masks probes at feature level"
    assert probe.target["cue"] in manifest[probe.sample_id]["cues"]["audio"][:2]
    text = [p for p in probe.request.messages[-1].content if isinstance(p, TextPart)][0].text
    assert text == f"Does the audio contain {probe.target['cue']}? Please answer with only 'yes' or 'no'."


def test_zero_features_falls_back_to_blank_on_backends_without_feature_masking(synth):
    root, specs, manifest, _ = synth
    backend = Responder({k: v["reasoning"] for k, v in manifest.items()}, "oracle", feature_masking=False)
    agg = _run(root, specs, backend)
    assert agg["mask_mode"] == "blank" and agg["summary"]["acc_at_v"] == 1.0
    with pytest.raises(ValueError, match="cannot zero processor features"):
        _run(root, specs, backend, mask_mode=MaskMode.ZERO_FEATURES)


def test_text_alone_accuracy_and_utilization_of_a_partial_responder(synth):
    root, specs, manifest, _ = synth
    # drops the sentence naming the audio cues from every reasoning: audio recall falls to 0 where audio cues exist
    stripped = {k: re.sub(r"The audio has[^.]*\.", "", v["reasoning"]) for k, v in manifest.items()}
    agg = _run(root, specs, Responder(stripped, "oracle"))
    util = agg["utilization"]["recall"]
    assert util["video"]["value"] == 1.0 and util["audio"]["value"] == 0.0
    n_v = sum(bool(r["cues"]["video"]) for r in manifest.values())
    n_a = sum(bool(r["cues"]["audio"]) for r in manifest.values())
    assert agg["utilization"]["excluded"]["video"] == 24 - n_v and agg["utilization"]["excluded"]["audio"] == 24 - n_a
    # the responder reads the reference reasoning in every variant, so the subtitle-alone score equals full
    assert agg["summary"]["text_alone_accuracy"] == agg["summary"]["emotion_accuracy"] == 1.0
