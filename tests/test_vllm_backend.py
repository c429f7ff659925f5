"""The vllm and openai backends on REAL vLLM engines (CPU build, in .venv-vllm): the offline engine, tensor and
data parallelism, and `vllm serve` reached over HTTP by the openai backend, all on the tiny Qwen2 text model
and compared with the hf backend.

vLLM cannot share the main venv (it pins an older transformers), so the engine side runs in
`.venv-vllm/bin/python -m mepbench.backends.vllm_worker`; create that venv with scripts/setup-vllm-venv.sh.
Without it these tests skip, unless MEPBENCH_REQUIRE_VLLM=1 (then they fail).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import unavailable
from mepbench.backends.hf import HFBackend
from mepbench.backends.openai import OpenAIBackend
from mepbench.backends.vllm import VLLMOptions, vllm_fingerprint
from mepbench.backends.vllm_worker import request_to_json
from mepbench.models.tiny_text import ensure_tiny_text
from mepbench.types import AudioPart, GenerationParams, Message, Modality, Request, TextPart, VideoPart

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[1]
VLLM_VENV = Path(os.environ.get("MEPBENCH_VLLM_VENV", ROOT / ".venv-vllm"))
ENGINE = {"dtype": "float32", "max_model_len": 512, "enforce_eager": True}
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
PARAMS = GenerationParams(max_new_tokens=16)
QUESTIONS = ("What emotion does the speaker feel? Answer with one word.", "Is the person happy? Answer yes or no.",
             "Describe the facial expression and the tone of voice.", "The subtitle reads: I cannot believe this.")
SERVE_KEY = "sk-local-vllm-serve-key"


def vllm_bin(name: str) -> Path:
    """A program of the vLLM venv; skips (fails under MEPBENCH_REQUIRE_VLLM=1) when the venv is absent."""
    path = VLLM_VENV / "bin" / name
    if not path.exists():
        unavailable(f"vLLM venv not found at {VLLM_VENV}: create it with scripts/setup-vllm-venv.sh",
                    "MEPBENCH_REQUIRE_VLLM")
    return path


def ask(text: str, *media, params: GenerationParams = PARAMS, **kwargs) -> Request:
    return Request(messages=(Message("system", (TextPart("You judge emotions."),)),
                             Message("user", (*media, TextPart(text)))), params=params, **kwargs)


GREEDY = [ask(q) for q in QUESTIONS]


def run_worker(model: Path, batches: list[list[Request]], tmp: Path, env: dict[str, str] | None = None,
               **options) -> dict:
    """Run the vllm backend in .venv-vllm on `batches` (one generate call each) and return its report."""
    python = vllm_bin("python")
    requests, out = tmp / "requests.jsonl", tmp / "report.json"
    requests.write_text("".join(json.dumps({"batch": k, "request": request_to_json(r)}) + "\n"
                                for k, batch in enumerate(batches) for r in batch))
    args = [f"{k}={json.dumps(v)}" for k, v in {**ENGINE, **options}.items()]
    command = [str(python), "-m", "mepbench.backends.vllm_worker", str(model), "--requests", str(requests),
               "--out", str(out), *(x for a in args for x in ("--model-arg", a))]
    done = subprocess.run(command, cwd=tmp, env={**os.environ, **ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def texts(batch: dict) -> list[str]:
    return [r["text"] for r in batch["responses"]]


@pytest.fixture(scope="module", autouse=True)
def _vllm_venv() -> None:
    """Skip (or fail) before any model is built when the vLLM venv is absent."""
    vllm_bin("python")


@pytest.fixture(scope="module")
def model(session_cache) -> Path:
    return ensure_tiny_text(session_cache)


@pytest.fixture(scope="module")
def hf(model):
    return HFBackend(str(model))


@pytest.fixture(scope="module")
def offline(model, tmp_path_factory) -> dict:
    """One engine start answering: a mixed batch, each greedy request alone, and the greedy batch again."""
    sampled = [ask("Tell a story.", params=GenerationParams(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=s))
               for s in (7, 7, 8)]
    failing = [ask("too long " * 400), ask("masked", zero_features=frozenset({Modality.AUDIO})),
               ask("video", VideoPart(str(model / "config.json"))), ask("audio", AudioPart(str(model / "nope.wav")))]
    batches = [GREEDY + sampled + failing, *([r] for r in GREEDY), GREEDY]
    return run_worker(model, batches, tmp_path_factory.mktemp("vllm-offline"))


def test_offline_engine_answers_and_fails_per_request(offline):
    mixed = offline["batches"][0]["responses"]
    ok, errors = mixed[:7], mixed[7:]
    assert all(r["error"] is None and r["completion_tokens"] > 0 and r["prompt_tokens"] > 20 for r in ok)
    assert "maximum context length is 512" in errors[0]["error"]
    assert "zero-features masking is not supported" in errors[1]["error"]
    assert "cannot take video" in errors[2]["error"] and "cannot take audio" in errors[3]["error"]
    assert offline["capabilities"] == {"modalities": ["text"], "feature_masking": False}


def test_greedy_text_is_batch_invariant_and_equals_the_hf_backend(offline, hf):
    batches = offline["batches"]
    together, rerun = texts(batches[0])[:4], texts(batches[5])
    alone = [texts(b)[0] for b in batches[1:5]]
    assert together == alone == rerun
    assert len(set(together)) == 4
    expected = hf.generate(GREEDY)
    assert together == [r.text for r in expected]
    vllm_counts = [(r["prompt_tokens"], r["completion_tokens"]) for r in batches[0]["responses"][:4]]
    assert vllm_counts == [(r.prompt_tokens, r.completion_tokens) for r in expected]


def test_seeded_sampling_is_reproducible(offline):
    seven, seven_again, eight = texts(offline["batches"][0])[4:7]
    assert seven == seven_again != eight


def test_describe_and_fingerprint(offline, model):
    info = offline["describe"]
    assert info["backend"] == "vllm" and info["model_type"] == "qwen2" and info["dtype"] == "float32"
    assert "blank media" in info["masking"] and info["options"]["enable_prefix_caching"] is True
    assert info["vllm"].startswith("0.") and info["limit_mm_per_prompt"] == {}
    assert offline["fingerprint"] == vllm_fingerprint(model, VLLMOptions.parse(ENGINE))


PLACEHOLDER_SOURCES = {"QwenOmniAdapter": ("qwen2_5_omni_thinker", "Qwen2_5OmniThinkerForConditionalGeneration"),
                       "QwenAudioAdapter": ("qwen2_audio", "Qwen2AudioForConditionalGeneration"),
                       "QwenVLAdapter": ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration")}


def _placeholder_strings(source: str, cls: str) -> str:
    """The string constants returned by `cls.get_placeholder_str` in a vLLM model file (read, not imported:
    importing the VL models needs torchvision, which the CPU venv cannot have)."""
    import ast

    tree = ast.parse(source)
    klass = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    method = next(n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == "get_placeholder_str")
    return " ".join(c.value for r in ast.walk(method) if isinstance(r, ast.Return)
                    for c in ast.walk(r) if isinstance(c, ast.Constant) and isinstance(c.value, str))


def test_family_placeholders_match_vllm():
    """Our per-family placeholder tokens are the ones vLLM's model classes put in prompts."""
    from mepbench.backends.vllm_inputs import PLACEHOLDERS

    vllm_bin("python")
    models = next(VLLM_VENV.glob("lib/python3*/site-packages/vllm/model_executor/models"))
    for adapter, tokens in PLACEHOLDERS.items():
        module, cls = PLACEHOLDER_SOURCES[adapter.__name__]
        returned = _placeholder_strings((models / f"{module}.py").read_text(), cls)
        assert all(token in returned for token in tokens.values()), (adapter.__name__, returned)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="tensor/data parallel of 2 needs 2 CPU cores")
@pytest.mark.parametrize("parallel", [{"tensor_parallel_size": 2}, {"data_parallel_size": 2}])
def test_parallel_engines_give_the_same_text(parallel, model, offline, tmp_path):
    env = {"VLLM_CPU_OMP_THREADS_BIND": "0|1"} if "tensor_parallel_size" in parallel else {}
    report = run_worker(model, [GREEDY], tmp_path, env=env, **parallel)
    assert texts(report["batches"][0]) == texts(offline["batches"][0])[:4]
    assert report["fingerprint"] == offline["fingerprint"]  # placement never splits the cache
    assert report["describe"]["options"][next(iter(parallel))] == 2


# -- vllm serve + the openai backend ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    """`vllm serve` on 127.0.0.1 with an API key; yields its base URL once /health answers. (vllm-cpu's `vllm` command
    looks up the version of a distribution named `vllm` and fails, so the server module is run directly.)"""
    port, log = free_port(), tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    command = [str(vllm_bin("python")), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port),
               "--served-model-name", "tiny-text", "--dtype", "float32", "--max-model-len", "512", "--enforce-eager",
               "--generation-config", "vllm", "--api-key", SERVE_KEY]
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=log.parent, env={**os.environ, **ENV}, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited with {server.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not healthy after 300 s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_group(server)


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process we started in its own session, and its children (engine core, workers)."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_openai_backend_against_vllm_serve_equals_the_offline_engine(served, offline, hf, monkeypatch, tmp_path):
    import soundfile as sf

    monkeypatch.setenv("MEPBENCH_TEST_VLLM_KEY", SERVE_KEY)
    suppress = hf.adapter.suppress_token_ids()  # the vllm and hf backends suppress media marker tokens
    backend = OpenAIBackend("tiny-text", base_url=served, api_key_env="MEPBENCH_TEST_VLLM_KEY", concurrency=4,
                            extra_body={"logit_bias": {str(i): -100 for i in suppress}}, backoff_s=0.05)
    sf.write(tmp_path / "tone.wav", [0.0] * 1600, 16000)
    requests = [*GREEDY, ask("hear this", AudioPart(str(tmp_path / "tone.wav"))), ask("too long " * 400)]
    responses = backend.generate(requests)
    # vLLM's server holds back an incomplete UTF-8 tail that the vllm backend (decoding as hf does) shows as U+FFFD
    assert [r.text for r in responses[:4]] == [t.rstrip("\ufffd") for t in texts(offline["batches"][0])[:4]]
    usage = [(r.prompt_tokens, r.completion_tokens) for r in responses[:4]]
    assert usage == [(r["prompt_tokens"], r["completion_tokens"]) for r in offline["batches"][0]["responses"][:4]]
    assert "HTTP 400" in responses[4].error and "HTTP 400" in responses[5].error  # text-only model; too long
    assert backend.stats == {"requests": 6, "errors": 2, "attempts": 6}

    monkeypatch.setenv("MEPBENCH_TEST_VLLM_KEY", "sk-wrong")
    denied = backend.generate(GREEDY[:1])[0]
    assert "HTTP 401" in denied.error and "sk-wrong" not in denied.error
