"""The flow language: Kestra's YAML as pydantic models, the YAML loader, task-type registry, JSON schema."""
