"""What every mapping engine shares: its one error, and reading a mapping file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MappingError", "load_yaml"]


class MappingError(ValueError):
    """A mapping file is wrong; the message names the file and the rule."""


def load_yaml(path: Path) -> Any:
    """A mapping file's content; a YAML syntax error names the file."""
    try:
        with path.open("rb") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise MappingError(f"{path.name}: not valid YAML: {exc}") from exc
