"""The modal stand-in (see ``tests/modal_standin/__init__.py``): ``import modal`` with
``tests/modal_standin`` on PYTHONPATH gets this instead of the installed SDK."""

from __future__ import annotations

from . import exception
from .app import App
from .exception import Error
from .image import Image
from .sandbox import Sandbox
from .secret import Secret
from .volume import Volume

__version__ = "1.6.4+mngr-standin"

__all__ = ["App", "Error", "Image", "Sandbox", "Secret", "Volume", "__version__", "exception"]
