"""The openai backend against a real HTTP server on 127.0.0.1: a scripted OpenAI-compatible stub (stdlib
http.server) that answers, throttles, fails, hangs or garbles per request, so retries, per-request errors,
concurrency, media encoding and key hygiene are checked over real sockets."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mepbench.backends import Backend, create_backend
from mepbench.backends.cached import CachedBackend
from mepbench.backends.openai import OpenAIBackend, public_url
from mepbench.cache import ResponseCache
from mepbench.judges import build_judges
from mepbench.types import (AudioPart, GenerationParams, ImagePart, Message, Modality, Request, Response, TextPart,
                            VideoPart)

SECRET = "sk-test-Zq8vW3-never-written"
FAST = {"backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0}
PARAMS = GenerationParams(max_new_tokens=16)


class StubServer:
    """Scripted chat-completions server. The last user text picks the behaviour: `429xN` / `500xN` / `503xN` fail
    the first N attempts, `slowxN` stalls the first N past the client timeout, `malformed` sends broken JSON,
    `bad` a 400, `nocontent` a JSON without choices, `echo-key` a 401 quoting the bearer token, `sleep` waits
    0.15 s; anything else answers `echo: <text>` with token usage. `healthy=False` makes every call a 500."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.healthy = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions"
                text = _last_user_text(body)
                with stub.lock:
                    stub.bodies.append(body)
                    stub.auth.append(self.headers.get("Authorization"))
                    stub.attempts[text] += 1
                    attempt = stub.attempts[text]
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    self._answer(body, text, attempt)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

            def _answer(self, body: dict, text: str, attempt: int):
                match = re.match(r"(429|500|503|slow)x(\d+)", text)
                if not stub.healthy:
                    return self._send(500, b'{"error": "down for maintenance"}')
                if match and attempt <= int(match.group(2)):
                    kind = match.group(1)
                    if kind == "slow":
                        time.sleep(1.0)
                        return self._send(200, b"{}")
                    headers = {"Retry-After": "0"} if kind == "503" else {}
                    return self._send(int(kind), json.dumps({"error": {"message": f"{kind} please retry"}}).encode(),
                                      headers)
                if text == "malformed":
                    return self._send(200, b'{"choices": [{"message": {"content": "trunc')
                if text == "bad":
                    return self._send(400, b'{"error": {"message": "unsupported content type"}}')
                if text == "nocontent":
                    return self._send(200, b'{"object": "chat.completion", "choices": []}')
                if text == "echo-key":
                    token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    return self._send(401, json.dumps({"error": f"Incorrect API key provided: {token}"}).encode())
                if text == "sleep":
                    time.sleep(0.15)
                answer = {"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": f"echo: {text}"}}],
                          "usage": {"prompt_tokens": 10 + len(text), "completion_tokens": 3,
                                    "total_tokens": 13 + len(text)}}
                self._send(200, json.dumps(answer).encode())

        return Handler


def _last_user_text(body: dict) -> str:
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p["type"] == "text")


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


def ask(*parts, params=PARAMS, **kwargs) -> Request:
    if all(isinstance(p, str) for p in parts):
        parts = tuple(TextPart(p) for p in parts)
    return Request(messages=(Message("system", (TextPart("You judge emotions."),)), Message("user", tuple(parts))),
                   params=params, **kwargs)


def backend_for(stub: StubServer, **options) -> OpenAIBackend:
    return OpenAIBackend("stub-model", base_url=stub.url, api_key_env="MEPBENCH_TEST_OPENAI_KEY",
                         **{**FAST, **options})


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("MEPBENCH_TEST_OPENAI_KEY", SECRET)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- protocol and bodies ---------------------------------------------------------------------------------------


def test_registry_builds_it_and_it_follows_the_protocol(stub):
    backend = create_backend("openai", "stub-model", base_url=stub.url, batch_size=8)
    assert isinstance(backend, Backend) and backend.name == "openai"
    assert backend.capabilities.modalities == frozenset(Modality) and not backend.capabilities.feature_masking
    info = backend.describe()
    assert info["base_url"] == stub.url and info["model"] == "stub-model" and "blank media" in info["masking"]


def test_text_requests_keep_order_and_record_usage(stub):
    backend = backend_for(stub)
    sampled = GenerationParams(max_new_tokens=7, temperature=0.8, top_p=0.9, seed=5)
    requests = [ask(f"question {i}") for i in range(5)] + [ask("sampled", params=sampled)]
    responses = backend.generate(requests)
    assert [r.text for r in responses] == [f"echo: question {i}" for i in range(5)] + ["echo: sampled"]
    assert all(r.ok and r.completion_tokens == 3 and r.latency_s > 0 for r in responses)
    assert responses[0].prompt_tokens == 10 + len("question 0")
    bodies = {_last_user_text(b): b for b in stub.bodies}
    greedy = bodies["question 0"]
    assert greedy["model"] == "stub-model" and greedy["max_tokens"] == 16 and greedy["temperature"] == 0.0
    assert greedy["messages"] == [{"role": "system", "content": "You judge emotions."},
                                  {"role": "user", "content": "question 0"}]
    assert (bodies["sampled"]["temperature"], bodies["sampled"]["top_p"], bodies["sampled"]["seed"]) == (0.8, 0.9, 5)


def test_options_change_the_body(stub):
    backend = backend_for(stub, max_tokens_field="max_completion_tokens", send_seed=False,
                          extra_body={"repetition_penalty": 1.0, "top_k": -1})
    assert backend.generate([ask("hi")])[0].ok
    body = stub.bodies[0]
    assert body["max_completion_tokens"] == 16 and "max_tokens" not in body and "seed" not in body
    assert body["repetition_penalty"] == 1.0 and body["top_k"] == -1


def _decode_image(url: str) -> np.ndarray:
    from PIL import Image

    header, data = url.split(",", 1)
    assert header == "data:image/jpeg;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_media_go_as_frame_data_urls_and_input_audio(stub, tmp_path):
    import soundfile as sf
    from PIL import Image

    from test_hf_backend import write_mp4

    clip = str(write_mp4(tmp_path / "clip.mp4", seed=0))
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    sf.write(tmp_path / "tone.wav", wave, 16000)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    backend = backend_for(stub, num_frames=4, frame_size=56)
    requests = [ask(VideoPart(clip), AudioPart(str(tmp_path / "tone.wav")), TextPart("full")),
                ask(VideoPart(clip, blank=True), AudioPart(str(tmp_path / "tone.wav"), blank=True), TextPart("blank")),
                ask(ImagePart(str(tmp_path / "red.png")), TextPart("image"))]
    assert all(r.ok for r in backend.generate(requests)), [r.error for r in backend.generate(requests)]
    bodies = {_last_user_text(b): b["messages"][1]["content"] for b in stub.bodies}
    for name in ("full", "blank"):
        content = bodies[name]
        assert [p["type"] for p in content] == ["image_url"] * 4 + ["input_audio", "text"]
        frames = [_decode_image(p["image_url"]["url"]) for p in content[:4]]
        assert all(f.shape == (56, 56, 3) for f in frames)
        audio = content[4]["input_audio"]
        assert audio["format"] == "wav"
        decoded, rate = sf.read(io.BytesIO(base64.b64decode(audio["data"])), dtype="float32")
        assert rate == 16000 and decoded.shape == wave.shape
        if name == "full":
            assert max(f.mean() for f in frames) > 20 and np.abs(decoded - wave).max() < 1e-3
        else:
            assert max(f.max() for f in frames) <= 8 and not decoded.any()  # black frames (JPEG noise), silence
    red = _decode_image(bodies["image"][0]["image_url"]["url"])
    assert red.shape == (30, 40, 3) and red[..., 0].mean() > 150


def test_audio_off_drops_the_capability_and_fails_only_audio_requests(stub, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "tone.wav", np.zeros(1600, np.float32), 16000)
    backend = backend_for(stub, audio=False)
    assert Modality.AUDIO not in backend.capabilities.modalities
    responses = backend.generate([ask(AudioPart(str(tmp_path / "tone.wav")), TextPart("a")), ask("b")])
    assert "audio input is off" in responses[0].error and responses[1].ok
    assert [_last_user_text(b) for b in stub.bodies] == ["b"]


def test_bad_media_and_zero_features_fail_alone_without_a_call(stub, tmp_path):
    backend = backend_for(stub)
    responses = backend.generate([ask(VideoPart(str(tmp_path / "gone.mp4")), TextPart("x")), ask("fine"),
                                  ask("masked", zero_features=frozenset({Modality.VIDEO}))])
    assert "gone.mp4" in responses[0].error and responses[1].ok and "zero-features" in responses[2].error
    assert [_last_user_text(b) for b in stub.bodies] == ["fine"]


# -- faults: retries, per-request errors, budget, server down -------------------------------------------------


def test_transient_failures_are_retried_until_success(stub):
    backend = backend_for(stub, timeout_s=0.3, max_retries=4)
    requests = [ask("429x2"), ask("500x3"), ask("503x1"), ask("slowx1"), ask("fine")]
    responses = backend.generate(requests)
    assert all(r.ok for r in responses), [r.error for r in responses]
    assert [stub.attempts[t] for t in ("429x2", "500x3", "503x1", "slowx1", "fine")] == [3, 4, 2, 2, 1]
    assert backend.stats == {"requests": 5, "errors": 0, "attempts": 12}


def test_persistent_and_permanent_failures_are_counted_per_request(stub):
    backend = backend_for(stub, max_retries=2)
    texts = ["500x99", "malformed", "bad", "nocontent", "fine", "429x99"]
    responses = dict(zip(texts, backend.generate([ask(t) for t in texts])))
    assert "HTTP 500" in responses["500x99"].error and "gave up after 3 attempts" in responses["500x99"].error
    assert "HTTP 429" in responses["429x99"].error
    assert "malformed JSON" in responses["malformed"].error
    assert "HTTP 400" in responses["bad"].error and "unsupported content type" in responses["bad"].error
    assert "malformed response" in responses["nocontent"].error
    assert responses["fine"].ok and responses["fine"].text == "echo: fine"
    assert [stub.attempts[t] for t in texts] == [3, 1, 1, 1, 1, 3]  # only transient errors are retried
    assert backend.stats["errors"] == 5


def test_server_down_fails_every_request_fast(tmp_path):
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{closed_port()}/v1", retry_budget=4, max_retries=3,
                            **{**FAST, "timeout_s": 2.0})
    start = time.perf_counter()
    responses = backend.generate([ask(f"q{i}") for i in range(6)])
    assert all("connection error" in r.error for r in responses)
    assert backend.budget.spent == 4 and time.perf_counter() - start < 10


def test_retry_budget_caps_retries_across_requests(stub):
    backend = backend_for(stub, max_retries=10, retry_budget=3, concurrency=1)
    responses = backend.generate([ask(f"500x99 {i}") for i in range(4)])
    assert all(not r.ok for r in responses)
    assert sum(stub.attempts.values()) == 4 + 3 and "retry budget spent" in responses[-1].error


def test_concurrency_limit_is_honoured(stub):
    backend = backend_for(stub, concurrency=3)
    start = time.perf_counter()
    responses = backend.generate([ask("sleep") for _ in range(12)])
    assert all(r.ok for r in responses)
    assert stub.max_in_flight == 3
    assert time.perf_counter() - start >= 4 * 0.15  # 12 requests, 3 at a time


def test_failed_requests_resume_from_the_cache(stub, tmp_path):
    cached = CachedBackend(backend_for(stub, max_retries=1), ResponseCache(tmp_path / "cache"))
    requests = [ask(f"item {i}") for i in range(4)]
    first = cached.generate(requests[:2])
    stub.healthy = False
    second = cached.generate(requests)
    assert all(r.ok for r in first) and [r.ok for r in second] == [True, True, False, False]
    stub.healthy = True
    before = sum(stub.attempts.values())
    third = cached.generate(requests)
    assert all(r.ok for r in third) and [r.text for r in third] == [f"echo: item {i}" for i in range(4)]
    assert sum(stub.attempts.values()) - before == 2  # only the two failed requests went out again


def test_generate_works_inside_a_running_event_loop(stub):
    backend = backend_for(stub)

    async def call() -> list[Response]:
        return backend.generate([ask("from a loop")])

    assert asyncio.run(call())[0].text == "echo: from a loop"


# -- identity and secrets ----------------------------------------------------------------------------------------


def test_api_key_is_sent_but_never_written(stub, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    cache_dir = tmp_path / "cache"
    backend = backend_for(stub)
    cached = CachedBackend(backend, ResponseCache(cache_dir))
    responses = cached.generate([ask("hello"), ask("echo-key")])
    assert stub.auth == [f"Bearer {SECRET}"] * 2
    assert responses[0].ok and "HTTP 401" in responses[1].error and "***" in responses[1].error
    written = [json.dumps(backend.describe()), backend.fingerprint(), repr(vars(backend)), caplog.text,
               *(json.dumps(r.to_dict()) for r in responses)]
    written += [p.read_bytes().decode("utf-8", "replace") for p in cache_dir.rglob("*") if p.is_file()]
    assert not [w for w in written if SECRET in w]
    fingerprint = backend.fingerprint()
    monkeypatch.setenv("MEPBENCH_TEST_OPENAI_KEY", "sk-another")
    assert backend_for(stub).fingerprint() == fingerprint
    monkeypatch.delenv("MEPBENCH_TEST_OPENAI_KEY")
    assert backend_for(stub).generate([ask("anonymous")])[0].ok and stub.auth[-1] is None


def test_fingerprint_tracks_server_model_and_content_options_only(stub):
    base = backend_for(stub).fingerprint()
    assert backend_for(stub, concurrency=32, timeout_s=9.0, max_retries=0, retry_budget=1).fingerprint() == base
    assert OpenAIBackend("other-model", base_url=stub.url).fingerprint() != base
    assert OpenAIBackend("stub-model", base_url=stub.url + "/x").fingerprint() != base
    assert backend_for(stub, num_frames=4).fingerprint() != base
    assert backend_for(stub, extra_body={"top_k": 1}).fingerprint() != base
    assert public_url("https://user:pw@api.example.com/v1/?key=abc") == "https://api.example.com/v1"


def test_openai_judge_resolves_through_the_registry(stub, tmp_path):
    judges = build_judges({"extract": "stub-model@openai"}, tmp_path,
                          {"base_url": stub.url, "api_key_env": "MEPBENCH_TEST_OPENAI_KEY"})
    judge = judges["extract"]
    assert isinstance(judge, CachedBackend) and judge.backend.name == "openai"
    assert judge.generate([ask("extract the cues")])[0].text == "echo: extract the cues"
    assert judge.generate([ask("extract the cues")])[0].ok and judge.hits == 1
