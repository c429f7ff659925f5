"""The two ways the vllm backend drives vLLM, behind one `run(prompts, sampling)` call.

- `OfflineEngine`: vLLM's offline `LLM` (tensor / pipeline parallel inside one engine). Each request
  is enqueued on its own, so a prompt vLLM rejects (too long, bad media) fails alone, then the whole
  queue runs at once and vLLM schedules it.
- `DataParallelEngine`: `data_parallel_size > 1`. vLLM's offline `LLM` refuses data parallelism for
  dense models, so this uses vLLM's async engine with its own data-parallel coordinator (the engine
  behind `vllm serve --data-parallel-size`): one engine core per GPU group, requests balanced by vLLM.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine
from typing import Any, Protocol


class Engine(Protocol):
    """Runs prompts to completion; one output or exception per prompt, in order."""

    def run(self, prompts: list[dict[str, Any]], sampling: list[dict[str, Any]]) -> list[Any]:
        """vLLM `RequestOutput`s, or the exception that stopped each prompt."""
        ...

    def close(self) -> None:
        """Shut the engine down and free its devices."""
        ...


class OfflineEngine:
    """vLLM's offline `LLM` engine."""

    def __init__(self, engine_args: dict[str, Any]):
        from vllm import LLM

        self.llm = LLM(**engine_args)

    def run(self, prompts: list[dict[str, Any]], sampling: list[dict[str, Any]]) -> list[Any]:
        """Enqueue every prompt (rejections stay per prompt), then run the queue to completion.

        `wait_for_completion` returns outputs in request-id order, which is the order of enqueueing."""
        from vllm import SamplingParams

        results: list[Any] = []  # None while the prompt is queued, else the exception that rejected it
        for prompt, kwargs in zip(prompts, sampling):
            try:
                self.llm.enqueue(prompt, SamplingParams(**kwargs), use_tqdm=False)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        queued = sum(r is None for r in results)
        if not queued:
            return results
        outputs = self.llm.wait_for_completion(use_tqdm=False)
        if len(outputs) != queued:
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {queued} requests")
        finished = iter(outputs)
        return [next(finished) if r is None else r for r in results]

    def close(self) -> None:
        """Stop the engine core (and its worker processes)."""
        shutdown = getattr(self.llm.llm_engine, "shutdown", None)
        if shutdown is not None:
            shutdown()


class DataParallelEngine:
    """vLLM's async engine with `data_parallel_size` engine cores, driven from a private event-loop thread."""

    def __init__(self, engine_args: dict[str, Any]):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-dp-loop", daemon=True)
        self._thread.start()
        self._ids = itertools.count()
        self.engine = self._call(self._start(engine_args))

    @staticmethod
    async def _start(engine_args: dict[str, Any]) -> Any:
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        return AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**engine_args))

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _one(self, prompt: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(**kwargs, output_kind=RequestOutputKind.FINAL_ONLY)
        final = None
        async for output in self.engine.generate(prompt, params, request_id=f"mepbench-{next(self._ids)}"):
            final = output
        return final

    async def _all(self, prompts: list[dict[str, Any]], sampling: list[dict[str, Any]]) -> list[Any]:
        return await asyncio.gather(*(self._one(p, s) for p, s in zip(prompts, sampling)), return_exceptions=True)

    def run(self, prompts: list[dict[str, Any]], sampling: list[dict[str, Any]]) -> list[Any]:
        """Submit every prompt at once; vLLM's coordinator spreads them over the engine cores."""
        return self._call(self._all(prompts, sampling))

    def close(self) -> None:
        """Shut the engine cores down and stop the loop thread."""
        self.engine.shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


INSTALL_HINT = ("the vllm backend needs vLLM: `pip install 'mepbench[vllm]'` on a GPU machine; on a CPU-only machine "
                "run scripts/setup-vllm-venv.sh and use .venv-vllm/bin/python")


def start_engine(engine_args: dict[str, Any]) -> Engine:
    """The data-parallel engine when `data_parallel_size > 1`, else the offline `LLM`."""
    try:
        import vllm  # noqa: F401  (only to give a clear message when it is missing)
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    if int(engine_args.get("data_parallel_size", 1)) > 1:
        return DataParallelEngine(engine_args)
    return OfflineEngine(engine_args)
