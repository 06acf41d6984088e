"""Project folders: ``project.json`` (versioned), ``mattes/``, ``cache/``; atomic saves, autosave and recovery."""

from .model import (MatteSettings, MediaRef, Placement, PlacementKey, Project, RenderSettings, SCHEMA_VERSION,
                    atomic_write_json)
from .create import create_project

__all__ = ["MatteSettings", "MediaRef", "Placement", "PlacementKey", "Project", "RenderSettings", "SCHEMA_VERSION",
           "atomic_write_json", "create_project"]
