"""Model registry: ``@register_model("name")`` on a factory, ``create_model(name, **kw)``, ``list_models()``.

Factories are plain callables returning a ``torch.nn.Module``; this module itself imports no torch,
so listing models is cheap. Model modules register themselves on import; :func:`create_model` and
:func:`list_models` import the built-in model modules first (lazily), so a name is always found
without importing them by hand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgesense.errors import ModelError

__all__ = ["register_model", "create_model", "list_models", "model_entrypoint", "BUILTIN_MODULES"]

#: Modules (under ``edgesense.nn``) whose import registers the built-in models.
BUILTIN_MODULES: tuple[str, ...] = ("gesture_cnn", "gesture_crnn", "fftnet", "convnet")

_REGISTRY: dict[str, Callable[..., Any]] = {}
_loaded = False


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn`` as the factory of model ``name`` (names are unique)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not fn and (
                existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"model {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        _REGISTRY[name] = fn
        return fn

    return wrap


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(f"edgesense.nn.{mod}")
        except ModuleNotFoundError as exc:
            # A built-in model module that does not exist (yet) is skipped; a missing dependency
            # *inside* an existing module (e.g. torch absent) is a real error.
            if exc.name != f"edgesense.nn.{mod}":
                raise


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def model_entrypoint(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``; raises :class:`ModelError` for unknown names."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY)) or '(none)'}") from None


def create_model(name: str, **kwargs: Any) -> Any:
    """Build model ``name`` with ``kwargs`` passed to its factory."""
    return model_entrypoint(name)(**kwargs)
