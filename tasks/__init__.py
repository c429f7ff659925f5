"""Built-in task specs (YAML) and prompt templates (Jinja2), installed as `mepbench._specs`."""
