"""Model-file choices for loader nodes: like ``FolderBound`` for input files, the registry binds loader classes to
the app's model folders (``bound_to_models``), so their choices list the folders afresh on every ``/object_info``.
At run time nodes resolve names through the run's ``model_folders`` service."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from graph.context import current_context
from graph.spec import MODEL_FOLDER_OPTION
from models.folders import ModelFolders

MODEL_FOLDERS_SERVICE = "model_folders"


class ModelFolderBound:
    """Base for loader nodes whose choices are model files; the registry holds a subclass that knows the folders."""

    MODEL_FOLDERS: ClassVar[ModelFolders | None] = None

    @classmethod
    def bound_to_models(cls, model_folders: ModelFolders) -> type:
        """A subclass of this node class whose ``MODEL_FOLDERS`` are ``model_folders``."""
        attributes = {"MODEL_FOLDERS": model_folders, "__module__": cls.__module__, "__doc__": cls.__doc__}
        return type(cls.__name__, (cls,), attributes)

    @classmethod
    def model_choices(cls, key: str) -> list[str]:
        """The files of folder ``key`` (empty when not bound)."""
        return [] if cls.MODEL_FOLDERS is None else cls.MODEL_FOLDERS.list_files(key)

    @classmethod
    def model_input(cls, key: str, tooltip: str) -> tuple[list[str], dict[str, Any]]:
        """A combo of folder ``key``'s files, marked with its folder key so a workflow check can tell a missing
        model file from an unsupported choice."""
        return (cls.model_choices(key), {"tooltip": tooltip, MODEL_FOLDER_OPTION: key})


def resolve_model_file(key: str, name: str, input_name: str) -> Path:
    """The file ``name`` of folder ``key``; ``ValueError`` naming the input and the folders searched if it is not
    there (a shared workflow naming a model this machine lacks)."""
    folders: ModelFolders = current_context().service(MODEL_FOLDERS_SERVICE)
    path = folders.resolve(key, name)
    if not path.is_file():
        searched = ", ".join(str(folder) for folder in folders.folders(key))
        raise ValueError(
            f"{input_name}: {name!r} is not in the {key} folder (searched {searched}); put the file there or run "
            f"./start.sh download with --folder {key}"
        )
    return path
