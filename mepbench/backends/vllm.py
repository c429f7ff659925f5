"""The vLLM backend: GPU-batched generation for text, VL, audio and omni checkpoints, on one GPU or many.

Every request of a `generate` call is rendered with the model's chat template, its media decoded
into `multi_modal_data` (frames as arrays, audio as (waveform, 16 kHz)), and the whole list is
handed to vLLM at once (prefix caching on) so vLLM schedules it. Scale-out is vLLM's own:
`tensor_parallel_size` / `pipeline_parallel_size` inside one engine, `data_parallel_size` engine
cores balanced by vLLM's coordinator (see `vllm_engine` and docs/inference.md). vLLM is imported
only when a backend is built.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mepbench.backends.adapters import ChatAdapter, adapter_for
from mepbench.backends.base import Capabilities
from mepbench.backends.hf import FINGERPRINT_GLOBS, resolve_model
from mepbench.backends.vllm_inputs import (EnginePrompt, build_engine_prompt, error_text, load_adapter, media_limits,
                                           model_type_of, sampling_kwargs)
from mepbench.media import file_hash
from mepbench.types import Request, Response

RECIPE_VERSION = 1  # bump when prompt or media building changes outputs
# vLLM engine arguments that change speed, memory or placement but not the generated text.
PLACEMENT_ARGS = frozenset({
    "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "data_parallel_size_local",
    "data_parallel_address", "data_parallel_rpc_port", "data_parallel_start_rank", "data_parallel_backend",
    "distributed_executor_backend", "gpu_memory_utilization", "enforce_eager", "enable_prefix_caching",
    "max_num_seqs", "max_num_batched_tokens", "enable_chunked_prefill", "swap_space", "cpu_offload_gb",
    "kv_cache_memory_bytes", "block_size", "disable_custom_all_reduce", "limit_mm_per_prompt",
    "disable_log_stats", "seed"})
MASKING_NOTE = ("no feature masking: vLLM takes raw media, so masked variants use blank media (black frames, "
                "silence) or drop the part; zero-features requests fail")


@dataclass(frozen=True)
class VLLMOptions:
    """Backend options (`--model-arg key=value`); names not listed here pass through to vLLM's engine args."""

    dtype: str = "auto"
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    limit_mm_per_prompt: int | dict[str, int] | None = None
    num_frames: int = 8
    frame_size: int = 112
    prep_workers: int = 4
    engine: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: dict[str, Any]) -> VLLMOptions:
        """Split user options into known fields and pass-through vLLM engine arguments."""
        known = {k: v for k, v in options.items() if k in cls.__dataclass_fields__ and k != "engine"}
        return cls(**known, engine={k: v for k, v in options.items() if k not in known})

    def output_options(self, adapter: type[ChatAdapter]) -> dict[str, Any]:
        """The options that can change generated text (placement and memory options cannot)."""
        engine = {k: v for k, v in sorted(self.engine.items()) if k not in PLACEMENT_ARGS}
        return {"backend": "vllm", "dtype": self.dtype, "max_model_len": self.max_model_len,
                "num_frames": self.num_frames, "frame_size": self.frame_size, "adapter": adapter.__name__,
                "recipe": RECIPE_VERSION, "engine": engine}

    def engine_args(self, path: Path, limits: dict[str, int]) -> dict[str, Any]:
        """Keyword arguments for vLLM's engine."""
        args: dict[str, Any] = {"model": str(path), "dtype": self.dtype,
                                "tensor_parallel_size": self.tensor_parallel_size,
                                "gpu_memory_utilization": self.gpu_memory_utilization,
                                "enforce_eager": self.enforce_eager,
                                "enable_prefix_caching": self.enable_prefix_caching}
        if self.max_model_len is not None:
            args["max_model_len"] = self.max_model_len
        if self.data_parallel_size > 1:
            args["data_parallel_size"] = self.data_parallel_size
        if limits:
            args["limit_mm_per_prompt"] = limits
        return {**args, **self.engine}


def weights_identity(path: Path, hub_id: str | None = None, revision: str | None = None) -> dict[str, str]:
    """The hub id and commit for hub snapshots, else each checkpoint file's sha256."""
    if hub_id is not None:
        return {"hub_id": hub_id, "revision": revision or ""}
    files = sorted({f for pattern in FINGERPRINT_GLOBS for f in path.glob(pattern) if f.is_file()})
    return {f.name: file_hash(f) for f in files}


def vllm_fingerprint(path: Path, options: VLLMOptions, hub_id: str | None = None, revision: str | None = None) -> str:
    """sha256 of the weights' identity and the output-changing options (never GPU counts or memory settings,
    so a run resumes from the cache on any GPU layout)."""
    adapter = adapter_for(model_type_of(path))
    blob = json.dumps({"model": weights_identity(path, hub_id, revision), "options": options.output_options(adapter)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class VLLMBackend:
    """A vLLM engine behind the `Backend` protocol (see `mepbench.backends.base`).

    `batch_size` (passed by the runner) is accepted and ignored: each `generate` call is one submission."""

    name = "vllm"

    def __init__(self, model: str, *, revision: str | None = None, local_files_only: bool = False,
                 batch_size: int | None = None, **options: Any):
        from mepbench.backends.vllm_engine import start_engine

        self.model_id, self.options = model, VLLMOptions.parse(options)
        self.path, commit = resolve_model(model, revision, local_files_only)
        self.revision = commit or revision
        self._hub_id = model if commit is not None else None
        self.model_type = model_type_of(self.path)
        self.adapter = load_adapter(self.path, self.options.num_frames, self.options.frame_size)
        adapter_cls = type(self.adapter)
        self.limits = media_limits(adapter_cls, self.options.limit_mm_per_prompt)
        self._suppress = self.adapter.suppress_token_ids()
        self.capabilities = Capabilities(modalities=adapter_cls.modalities, batching=True, feature_masking=False,
                                         extra={"model_type": self.model_type, "masking": "blank"})
        self._fingerprint = vllm_fingerprint(self.path, self.options, self._hub_id, self.revision)
        self.engine = start_engine(self.options.engine_args(self.path, self.limits))

    def fingerprint(self) -> str:
        """sha256 of the checkpoint files (or hub commit) and the options that change outputs."""
        return self._fingerprint

    def describe(self) -> dict[str, object]:
        """Model, revision, family, dtype, engine options, versions and the masking note for results.json."""
        import torch
        import transformers
        import vllm

        return {"backend": self.name, "model": self.model_id, "path": str(self.path), "revision": self.revision,
                "model_type": self.model_type, "dtype": self.options.dtype,
                "options": {k: v for k, v in asdict(self.options).items() if k != "engine"} | self.options.engine,
                "limit_mm_per_prompt": self.limits, "masking": MASKING_NOTE,
                "vllm": vllm.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
                "fingerprint": self.fingerprint()}

    def _prepare(self, request: Request) -> tuple[EnginePrompt | Exception, float]:
        start = time.perf_counter()
        try:
            return build_engine_prompt(self.adapter, request, self.limits), time.perf_counter() - start
        except Exception as exc:
            return exc, time.perf_counter() - start

    def generate(self, requests: list[Request]) -> list[Response]:
        """Answer all requests in one engine submission; a failing request yields an error Response."""
        with ThreadPoolExecutor(max(1, self.options.prep_workers)) as pool:
            prepared = list(pool.map(self._prepare, requests))
        ready = [(i, p, s) for i, (p, s) in enumerate(prepared) if isinstance(p, EnginePrompt)]
        responses = [Response(error=error_text(p), latency_s=s) if isinstance(p, Exception) else Response()
                     for p, s in prepared]
        if not ready:
            return responses
        start = time.perf_counter()
        try:
            outputs = self.engine.run([p.as_vllm() for _, p, _ in ready],
                                      [sampling_kwargs(requests[i].params, self._suppress) for i, _, _ in ready])
        except Exception as exc:  # the engine itself failed: every request of this call reports it
            outputs = [exc] * len(ready)
        share = (time.perf_counter() - start) / len(ready)
        for (i, _, prep_s), output in zip(ready, outputs):
            responses[i] = _to_response(output, prep_s + share, self.adapter.tokenizer)
        return responses

    def close(self) -> None:
        """Shut the engine down (frees GPUs for another backend in the same process)."""
        self.engine.close()


def _to_response(output: Any, latency_s: float, tokenizer: Any) -> Response:
    """A vLLM `RequestOutput` (or the exception raised for its prompt) as a Response.

    The text is decoded from the token ids as the hf backend does it: vLLM's incremental detokenizer holds
    back an incomplete UTF-8 tail where the hf backend shows a replacement character."""
    if isinstance(output, BaseException):
        return Response(error=error_text(output), latency_s=latency_s)
    if output is None or not output.outputs:
        return Response(error="vLLM returned no output for this request", latency_s=latency_s)
    completion = output.outputs[0]
    text = tokenizer.decode(list(completion.token_ids), skip_special_tokens=True)
    return Response(text=text, prompt_tokens=len(output.prompt_token_ids or ()),
                    completion_tokens=len(completion.token_ids), latency_s=latency_s)


__all__ = ["MASKING_NOTE", "VLLMBackend", "VLLMOptions", "vllm_fingerprint"]
