"""Task plugins: the `Task` base class, YAML specs, task options, dataset loaders and the registry."""

from mepbench.tasks.base import Cell, LoadResult, Task, TaskContext
from mepbench.tasks.loaders import (
           load_manifest,
           load_mep_synth,
           mep_synth_root,
           register_loader,
)
from mepbench.tasks.options import NoOptions, TaskArgError, option
from mepbench.tasks.registry import Group, TaskRegistry
from mepbench.tasks.spec import (
           SpecError,
           SpecTask,
           builtin_spec_dir,
           make_spec_task,
           read_spec,
)

__all__ = ["Cell", "Group", "LoadResult", "NoOptions", "SpecError", "SpecTask", "Task", "TaskArgError", "TaskContext",
           "TaskRegistry", "builtin_spec_dir", "load_manifest", "load_mep_synth", "make_spec_task", "mep_synth_root",
           "option", "read_spec", "register_loader"]
