"""Stands in for a GPU job: reports where it ran and hands a metric back to the flow."""

import json
import os
import platform

print(f"training on {platform.node()} in {os.getcwd()}")
print("::" + json.dumps({"outputs": {"accuracy": 0.93, "host": platform.node()}}) + "::")
