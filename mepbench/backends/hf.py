"""The transformers backend: local checkpoints on CPU or GPU, batched, with processor-feature masking.

Requests are prepared one by one (a bad file fails only its own request), collated with left padding
and decoded with `model.generate`. Greedy texts do not depend on batch composition: left padding
with attention masks and mask-aware (M-)RoPE positions keep logits equal to a lone request's up to
float rounding (~1e-5 in float32; see tests/test_hf_backend.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch

from mepbench.backends.adapters import ChatAdapter, Prepared, adapter_for
from mepbench.backends.adapters.base import FEATURE_KEYS
from mepbench.backends.base import Capabilities
from mepbench.backends.numpy_video import torchvision_available
from mepbench.media import MediaError, file_hash
from mepbench.types import GenerationParams, Modality, Request, Response

RECIPE_VERSION = 1  # bump when input building changes outputs (rendering, frame/audio handling)
FINGERPRINT_GLOBS = ("*.safetensors", "*.bin", "*.json", "*.jinja", "*.model", "*.tiktoken", "merges.txt",
                     "vocab.txt")
MEDIA_FEATURES = frozenset(k for keys in FEATURE_KEYS.values() for k in keys)
# Neutral decoding: a checkpoint's generation_config (e.g. repetition_penalty) must not leak into results.
NEUTRAL_DECODING = {"num_beams": 1, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_new_tokens": 0}


def resolve_model(model: str, revision: str | None, local_files_only: bool) -> tuple[Path, str | None]:
    """A local checkpoint directory for `model` (a directory or a hub id) and the hub commit, if any."""
    local = Path(model).expanduser()
    if local.is_dir():
        return local.resolve(), None
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise FileNotFoundError(f"model directory not found: {model}")
    from huggingface_hub import snapshot_download

    snapshot = Path(snapshot_download(model, revision=revision, local_files_only=local_files_only))
    return snapshot, snapshot.name


def _error_text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, MediaError) else f"{type(exc).__name__}: {exc}"


def _completion_length(ids: list[int], eos: set[int]) -> int:
    """Generated tokens up to and including the first end-of-turn token (padding after it excluded)."""
    for n, tok in enumerate(ids, 1):
        if tok in eos:
            return n
    return len(ids)


class HFBackend:
    """A transformers model behind the `Backend` protocol (see `mepbench.backends.base`)."""

    name = "hf"

    def __init__(self, model: str, *, device: str = "cpu", dtype: str = "float32", num_frames: int = 8,
                 frame_size: int = 112, batch_size: int = 8, revision: str | None = None,
                 local_files_only: bool = False):
        from transformers import AutoConfig

        self.model_id, self.device, self.dtype = model, device, dtype
        self.num_frames, self.frame_size, self.batch_size = num_frames, frame_size, max(1, batch_size)
        self.path, commit = resolve_model(model, revision, local_files_only)
        self.from_hub = commit is not None
        self.revision = commit or revision
        config = AutoConfig.from_pretrained(self.path)
        self.model_type: str = config.model_type
        self.adapter: ChatAdapter = adapter_for(self.model_type).load(
            self.path, config, dtype=dtype, device=device, num_frames=num_frames, frame_size=frame_size)
        self.capabilities = Capabilities(modalities=self.adapter.modalities, batching=True,
                                         feature_masking=self.adapter.modalities != {Modality.TEXT},
                                         extra={"model_type": self.model_type})
        self._fingerprint: str | None = None

    # -- identity --------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        """Backend options that change outputs (device and batch size do not)."""
        return {"dtype": self.dtype, "num_frames": self.num_frames, "frame_size": self.frame_size,
                "adapter": type(self.adapter).__name__, "video_processor": self._video_processor_kind(),
                "recipe": RECIPE_VERSION}

    def _video_processor_kind(self) -> str:
        return "stock" if torchvision_available() else "numpy"

    def _weights_identity(self) -> dict[str, str]:
        if self.from_hub:
            return {"hub_id": self.model_id, "revision": self.revision}
        files = sorted({f for pattern in FINGERPRINT_GLOBS for f in self.path.glob(pattern) if f.is_file()})
        return {f.name: file_hash(f) for f in files}

    def fingerprint(self) -> str:
        """sha256 of the checkpoint files' hashes (weights, configs, tokenizer) and output-changing options."""
        if self._fingerprint is None:
            blob = json.dumps({"model": self._weights_identity(), "options": self._options()}, sort_keys=True)
            self._fingerprint = hashlib.sha256(blob.encode()).hexdigest()
        return self._fingerprint

    def describe(self) -> dict[str, object]:
        """Model id, resolved path and revision, family, dtype, device, size and options for results.json."""
        import transformers

        return {"backend": self.name, "model": self.model_id, "path": str(self.path), "revision": self.revision,
                "model_type": self.model_type, "dtype": self.dtype, "device": self.device,
                "params": sum(p.numel() for p in self.adapter.model.parameters()),
                "options": {**self._options(), "batch_size": self.batch_size},
                "transformers": transformers.__version__, "torch": torch.__version__,
                "fingerprint": self.fingerprint()}

    # -- generation ------------------------------------------------------------------------------

    def generate(self, requests: list[Request]) -> list[Response]:
        """Answer requests in order; batches share decoding params, failures stay per request."""
        responses: list[Response | None] = [None] * len(requests)
        for chunk in self._chunks(requests):
            ready: list[tuple[int, Prepared]] = []
            for i in chunk:
                try:
                    ready.append((i, self.adapter.prepare(requests[i])))
                except Exception as exc:
                    responses[i] = Response(error=_error_text(exc))
            if ready:
                for i, response in self._generate_batch(ready, requests[ready[0][0]].params):
                    responses[i] = response
        return cast("list[Response]", responses)  # every index got a response or an error above

    def _chunks(self, requests: list[Request]) -> Iterator[list[int]]:
        """Indices grouped by decoding params (first-seen order), in slices of `batch_size`."""
        groups: dict[GenerationParams, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.params, []).append(i)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                yield indices[start:start + self.batch_size]

    def _generate_batch(self, ready: list[tuple[int, Prepared]],
                        params: GenerationParams) -> list[tuple[int, Response]]:
        """One `generate` call; if the batch fails, its requests are retried one at a time."""
        try:
            return self._run(ready, params)
        except Exception as exc:
            if len(ready) == 1:
                return [(ready[0][0], Response(error=_error_text(exc)))]
            return [pair for item in ready for pair in self._generate_batch([item], params)]

    def _decoding_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**NEUTRAL_DECODING, "max_new_tokens": params.max_new_tokens,
                                  "do_sample": not params.greedy, "pad_token_id": self.adapter.pad_token_id(),
                                  "eos_token_id": self.adapter.eos_token_ids(),
                                  "suppress_tokens": self.adapter.suppress_token_ids() or None}
        if params.greedy:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        return kwargs

    def _to_device(self, key: str, value: Any) -> Any:
        """Move a batch tensor to the model's device; media features also take the model's dtype."""
        if not isinstance(value, torch.Tensor):
            return value
        if key in MEDIA_FEATURES:
            return value.to(self.device, dtype=self.adapter.model.dtype)
        return value.to(self.device)

    def _run(self, ready: list[tuple[int, Prepared]], params: GenerationParams) -> list[tuple[int, Response]]:
        batch = {k: self._to_device(k, v) for k, v in self.adapter.collate([p for _, p in ready]).items()}
        if not params.greedy:
            torch.manual_seed(params.seed)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.adapter.model.generate(**batch, **self._decoding_kwargs(params))
        share = (time.perf_counter() - start) / len(ready)
        new = out[:, batch["input_ids"].shape[1]:].tolist()
        eos = set(self.adapter.eos_token_ids())
        responses = []
        for (i, prepared), ids in zip(ready, new):
            n = _completion_length(ids, eos)
            text = self.adapter.tokenizer.decode(ids[:n], skip_special_tokens=True)
            responses.append((i, Response(text=text, prompt_tokens=prepared.prompt_tokens, completion_tokens=n,
                                          latency_s=prepared.prep_s + share)))
        return responses
