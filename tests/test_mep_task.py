"""MEP metrics on mep-synth with scripted responders that must score what they deserve: an oracle, a perceiver, a
mask detector, always-yes, always-no and a hallucinator that infers the face and the voice from the subtitle."""

import json
import re

import pytest

from helpers import copy_builtin_spec
from mepbench.backends.base import Capabilities
from mepbench.backends.scripted import ScriptedBackend
from mepbench.masking import MaskMode
from mepbench.runner import EvalConfig, run_eval
from mepbench.scoring.vocabulary import SUBTITLES
from mepbench.synth.cues import AUDIO_PROFILES, VISUAL_PROFILES
from mepbench.types import Modality, Request, Response, TextPart

PROBE = re.compile(r"Does the (video show|audio contain) (.+?)\?")
SENTENCE = {"video": re.compile(r"The face (shows|is relaxed)[^.]*\."),
            "audio": re.compile(r"The (audio has|voice is even)[^.]*\."),
            "text": re.compile(r'The subtitle (says "[^"]*", which mentions [^.]*|"[^"]*" is emotionally uninformative)\.')}
ABSENT = {"video": "No video is available, so I cannot see the face.",
          "audio": "I cannot hear the voice: there is no audio.", "text": "There is no subtitle."}
PROFILES = {"video": VISUAL_PROFILES, "audio": AUDIO_PROFILES}
SUBTITLE_EMOTION = {line: emotion for emotion, lines in SUBTITLES.items() for line, _ in lines}


def sees(request: Request, modality: str) -> bool:
    parts = [p for p in request.media_parts() if p.type == modality and not p.blank]
    return bool(parts) and Modality(modality) not in request.zero_features


class Responder(ScriptedBackend):
    """Main question: the reference reasoning, edited per policy under masks. Probes: answered by policy."""

    def __init__(self, manifest: dict, policy: str, feature_masking: bool = True):
        super().__init__(capabilities=Capabilities(feature_masking=feature_masking))
        self.manifest, self.policy = manifest, policy
        self.expected: dict[tuple[str, str, str], str] = {}

    def reasoning(self, request: Request) -> str:
        clip = self.manifest[request.sample_id]
        text, masked = clip["reasoning"], request.variant.removeprefix("mask:")
        if self.policy == "oracle" and masked in SENTENCE:
            return SENTENCE[masked].sub(ABSENT[masked], text)
        if self.policy == "hallucinator":
            return text.replace("<think>", "<think>The face is relaxed and the voice is steady. ")
        return text

    def probe(self, request: Request, modality: str, cue: str) -> str:
        clip = self.manifest[request.sample_id]
        present, visible = cue in clip["cues"][modality], sees(request, modality)
        if self.policy in ("oracle", "perceiver"):
            return "yes" if present and visible else "no"
        if self.policy == "mask-detector":
            return "yes" if visible else "no"
        if self.policy == "hallucinator":
            guessed = SUBTITLE_EMOTION.get(clip["subtitle"], "neutral")
            return "Yes, clearly." if cue in PROFILES[modality][guessed].all else "No."
        return {"always-yes": "Yes.", "always-no": "No."}[self.policy]

    def generate(self, requests):
        self.asked.extend(requests)
        out = []
        for r in requests:
            probe = PROBE.search(r.messages[-1].text())
            if probe is None:
                out.append(Response(text=self.reasoning(r)))
            else:
                modality = "video" if probe.group(1).startswith("video") else "audio"
                out.append(Response(text=self.probe(r, modality, probe.group(2))))
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


def counts(manifest: dict, modality: str) -> dict[str, int]:
    """Probe-set sizes from the manifest: present cues (first 2) and absent cues (first 2) per clip."""
    return {"present": sum(min(2, len(r["cues"][modality])) for r in manifest.values()),
            "absent": sum(min(2, len(r["absent"][modality])) for r in manifest.values())}


@pytest.mark.parametrize("policy", ["oracle", "perceiver"])
def test_oracle_and_perceiver_score_one_on_every_probe_set(synth, policy):
    root, specs, manifest, _ = synth
    agg = _run(root, specs, Responder(manifest, policy))
    s = agg["summary"]
    for m in ("v", "a"):
        assert s[f"pf_{m}"] == s[f"acc_at_{m}"] == s[f"control_acc_{m}"] == s[f"tnr_absent_{m}"] == 1.0
        assert s[f"balanced_absent_{m}"] == s[f"balanced_faithfulness_{m}"] == 1.0
    for modality in ("video", "audio"):
        f, n = agg["faithfulness"][modality], counts(manifest, modality)
        assert (f["control"]["n"], f["masked"]["n"], f["absent"]["n"]) == (n["present"], n["present"], n["absent"])
        assert s[f"yes_rate_{modality[0]}"] == pytest.approx(n["present"] / (2 * n["present"] + n["absent"]))
        assert f["headline"]["ci_low"] == f["headline"]["ci_high"] == 1.0


@pytest.mark.parametrize("policy, tpr, tnr_absent, tnr_masked, yes_rate", [
    ("always-yes", 1.0, 0.0, 0.0, 1.0),
    ("always-no", 0.0, 1.0, 1.0, 0.0),
    ("mask-detector", 1.0, 0.0, 1.0, None),
])
def test_blind_policies_score_chance_on_the_headline(synth, policy, tpr, tnr_absent, tnr_masked, yes_rate):
    """Answer policies that never look at the cue: all at chance (0.5) on PF, whatever they get on Acc@V/Acc@A."""
    root, specs, manifest, _ = synth
    agg = _run(root, specs, Responder(manifest, policy))
    s = agg["summary"]
    for m, modality in (("v", "video"), ("a", "audio")):
        assert (s[f"control_acc_{m}"], s[f"tnr_absent_{m}"], s[f"acc_at_{m}"]) == (tpr, tnr_absent, tnr_masked)
        assert s[f"pf_{m}"] == 0.5
        assert s[f"balanced_absent_{m}"] == (tpr + tnr_absent) / 2
        assert s[f"balanced_faithfulness_{m}"] == (tpr + tnr_masked) / 2
        n = counts(manifest, modality)
        want = yes_rate if yes_rate is not None else (n["present"] + n["absent"]) / (2 * n["present"] + n["absent"])
        assert s[f"yes_rate_{m}"] == pytest.approx(want)
        block = agg["faithfulness"][modality]["headline"]
        assert 0.0 <= block["ci_low"] <= block["value"] <= block["ci_high"] <= 1.0


def test_hallucinator_inferring_cues_from_the_subtitle_scores_what_the_rule_gives(synth):
    """Says "yes" to a cue iff the subtitle's emotion shows it, never looking at the media: its rates follow from
    the manifest by that rule alone, and its headline stays at or below chance."""
    root, specs, manifest, _ = synth
    agg = _run(root, specs, Responder(manifest, "hallucinator"))
    for modality in ("video", "audio"):
        says_yes = {clip_id: PROFILES[modality][SUBTITLE_EMOTION.get(clip["subtitle"], "neutral")].all
                    for clip_id, clip in manifest.items()}
        present = [(i, c) for i, r in manifest.items() for c in r["cues"][modality][:2]]
        absent = [(i, c) for i, r in manifest.items() for c in r["absent"][modality][:2]]
        tpr = sum(c in says_yes[i] for i, c in present) / len(present)
        tnr_masked = 1 - tpr
        tnr_absent = sum(c not in says_yes[i] for i, c in absent) / len(absent)
        f = agg["faithfulness"][modality]
        assert f["control"]["accuracy"]["value"] == pytest.approx(tpr)
        assert f["masked"]["accuracy"]["value"] == pytest.approx(tnr_masked)
        assert f["absent"]["accuracy"]["value"] == pytest.approx(tnr_absent)
        assert f["headline"]["value"] == pytest.approx(min((tpr + tnr_absent) / 2, 0.5))
        assert f["headline"]["value"] <= 0.5
    # under every mask it describes the face and the voice: every masked answer claims a cue of the masked modality
    assert agg["claims"]["video"]["rate"]["value"] == agg["claims"]["audio"]["rate"]["value"] == 1.0
    assert agg["grounded_utilization"]["video"]["value"] == pytest.approx(0.0)
    assert agg["grounded_utilization"]["audio"]["value"] == pytest.approx(0.0)


def test_oracle_grounded_utilization_and_no_claims_under_masking(synth):
    root, specs, manifest, _ = synth
    agg = _run(root, specs, Responder(manifest, "oracle"))
    for modality in ("video", "audio", "text"):
        grounded = agg["grounded_utilization"][modality]
        with_cues = sum(bool(r["cues"][modality]) for r in manifest.values())
        assert grounded["n"] == with_cues and grounded["n_failed"] == 0
        assert grounded["full"] == 1.0 and grounded["masked"] == 0.0 and grounded["value"] == 1.0
    for modality in ("video", "audio"):
        claims = agg["claims"][modality]
        assert claims["n"] == 24 and claims["n_claiming"] == 0 and claims["rate"]["value"] == 0.0
        assert claims["per_response"]["value"] == 0.0
    assert agg["summary"]["utilization_recall_text"] == 1.0  # the text cue is found inside the quoted subtitle
    assert agg["utilization"]["embedder"] == "exact" and agg["utilization"]["extractor"] == "lexicon"


def test_a_guesser_that_names_every_cue_under_every_mask_has_zero_grounded_recall(synth):
    root, specs, manifest, _ = synth
    agg = _run(root, specs, Responder(manifest, "always-yes"))  # main answers: the reference reasoning, unmasked
    s = agg["summary"]
    assert s["utilization_recall_video"] == s["utilization_recall_audio"] == 1.0
    assert s["grounded_recall_video"] == s["grounded_recall_audio"] == s["grounded_recall_text"] == 0.0
    with_video_cues = sum(bool(r["cues"]["video"]) for r in manifest.values())
    # the reference reasoning describes the face of every clip: its cues, or "the face is relaxed"
    assert agg["claims"]["video"]["n_claiming"] == 24 and agg["claims"]["video"]["n"] == 24
    assert agg["claims"]["video"]["per_response"]["value"] == pytest.approx(
        sum(len(r["cues"]["video"]) or 1 for r in manifest.values()) / 24)
    assert with_video_cues < 24


def test_failed_masked_answers_cannot_raise_grounded_recall_or_lower_claims(synth):
    root, specs, manifest, _ = synth
    backend = Responder(manifest, "always-yes")
    failing = sorted(manifest)[:5]
    original = backend.generate

    def generate(requests):
        out = original(requests)
        return [Response(error="server down") if r.sample_id in failing and r.variant == "mask:video" else o
                for r, o in zip(requests, out)]

    backend.generate = generate
    agg = _run(root, specs, backend)
    assert agg["grounded_utilization"]["video"]["value"] == 0.0
    assert agg["grounded_utilization"]["video"]["n_failed"] == sum(bool(manifest[i]["cues"]["video"]) for i in failing)
    assert agg["claims"]["video"]["n_failed"] == 5 and agg["claims"]["video"]["rate"]["value"] == 1.0


def test_probe_counts_and_cells_are_built_as_documented(synth):
    root, specs, manifest, first = synth
    f = first.tasks["mini-mep"]["faithfulness"]
    for modality in ("video", "audio"):
        n = counts(manifest, modality)
        assert f[modality]["masked"]["n"] == f[modality]["control"]["n"] == n["present"]
        assert f[modality]["absent"]["n"] == n["absent"]
    probe = next(i for i in first.items if i.item == "probe:audio:0")
    assert probe.variant == "mask:audio" and probe.target["expected"] == "no"
    assert probe.request.zero_features == {Modality.AUDIO}, "mep-synth masks probes at feature level"
    assert probe.target["cue"] in manifest[probe.sample_id]["cues"]["audio"][:2]
    text = [p for p in probe.request.messages[-1].content if isinstance(p, TextPart)][0].text
    assert text == f"Does the audio contain {probe.target['cue']}? Please answer with only 'yes' or 'no'."
    negatives = [i for i in first.items if i.item.startswith("negative:")]
    assert negatives and all(i.variant == "full" and i.target["expected"] == "no" for i in negatives)
    for item in negatives:
        modality = item.target["modality"]
        clip = manifest[item.sample_id]
        assert item.target["cue"] not in clip["cues"][modality] and item.target["cue"] in clip["absent"][modality][:2]


def test_absent_cues_put_the_label_s_unshown_cues_first(synth):
    """mep-synth's negatives start with the bait: cues the label's emotion would show that this clip does not."""
    _, _, manifest, _ = synth
    baited = 0
    for clip in manifest.values():
        for modality in ("video", "audio"):
            bait = PROFILES[modality][clip["label"]].all - set(clip["cues"][modality])
            absent = clip["absent"][modality]
            assert set(absent).isdisjoint(clip["cues"][modality])
            assert set(absent[:len(bait)]) == bait
            baited += bool(bait)
    assert baited > 0


def test_zero_features_falls_back_to_blank_on_backends_without_feature_masking(synth):
    root, specs, manifest, _ = synth
    backend = Responder(manifest, "oracle", feature_masking=False)
    agg = _run(root, specs, backend)
    assert agg["mask_mode"] == "blank" and agg["summary"]["acc_at_v"] == 1.0 and agg["summary"]["pf_v"] == 1.0
    with pytest.raises(ValueError, match="cannot zero processor features"):
        _run(root, specs, backend, mask_mode=MaskMode.ZERO_FEATURES)


def test_text_alone_accuracy_and_utilization_of_a_partial_responder(synth):
    root, specs, manifest, _ = synth
    # drops the sentence naming the audio cues from every reasoning: audio recall falls to 0 where audio cues exist
    stripped = {k: {**v, "reasoning": re.sub(r"The audio has[^.]*\.", "", v["reasoning"])} for k, v in manifest.items()}
    agg = _run(root, specs, Responder(stripped, "perceiver"))
    util = agg["utilization"]["recall"]
    assert util["video"]["value"] == 1.0 and util["audio"]["value"] == 0.0
    n_v = sum(bool(r["cues"]["video"]) for r in manifest.values())
    n_a = sum(bool(r["cues"]["audio"]) for r in manifest.values())
    assert agg["utilization"]["excluded"]["video"] == 24 - n_v and agg["utilization"]["excluded"]["audio"] == 24 - n_a
    # the responder reads the reference reasoning in every variant, so the subtitle-alone score equals full
    assert agg["summary"]["text_alone_accuracy"] == agg["summary"]["emotion_accuracy"] == 1.0
