"""Task plugins, one module per family, each registered as a `celestra.tasks` entry point (pyproject.toml).

The API they use is workers/plugin_api.py."""
