"""Task plugins: the `Task` base class, YAML specs, dataset loaders and the registry."""

from mepbench.tasks.base import LoadResult, Task, TaskContext
from mepbench.tasks.loaders import register_loader
from mepbench.tasks.registry import Group, TaskRegistry

__all__ = ["Group", "LoadResult", "Task", "TaskContext", "TaskRegistry", "register_loader"]
