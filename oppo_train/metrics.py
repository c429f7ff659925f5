"""Step metrics: one JSON line per step (always), TensorBoard scalars and W&B (optional), main process only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Appends `{"step": n, ...}` lines to `metrics.jsonl`; on resume the lines after the resumed step are dropped, so
    the file never holds two histories."""

    def __init__(self, output_dir: Path, *, enabled: bool = True, tensorboard: bool = False, wandb: bool = False,
                 wandb_project: str = "oppo", config: dict[str, Any] | None = None):
        self.path = output_dir / "metrics.jsonl"
        self.enabled = enabled
        self._tb: Any = None
        self._wandb: Any = None
        if not enabled:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(output_dir / "tensorboard"))
        if wandb:
            import wandb as wandb_module

            self._wandb = wandb_module.init(project=wandb_project, config=config, dir=str(output_dir))

    def truncate(self, last_step: int) -> None:
        """Keep only the lines of steps <= `last_step` (called when resuming)."""
        if not self.enabled or not self.path.exists():
            return
        lines = [line for line in self.path.read_text().splitlines()
                 if line.strip() and json.loads(line).get("step", 0) <= last_step]
        self.path.write_text("".join(line + "\n" for line in lines))

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Write one step's metrics (non-finite floats become null in JSON)."""
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        scalars = {k: v for k, v in clean.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        """Flush and close the optional writers."""
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The metrics lines of a run folder."""
    path = Path(output_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
