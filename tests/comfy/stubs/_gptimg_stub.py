"""Placeholders shared by the torchvision/torchaudio stubs (see README.md)."""

import importlib.abc
import importlib.machinery
import sys
import types


class Placeholder:
    """Stands for ``name``; any call raises, any attribute is another placeholder."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> "Placeholder":
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError(
            f"{self._name} is a test stub (gptimg tests/comfy/stubs): the real package is not "
            "installed in this ComfyUI test environment"
        )

    def __repr__(self) -> str:
        return f"<stub {self._name}>"


def module_getattr(module: str):
    """A module-level ``__getattr__`` returning placeholders for ``module``'s attributes."""

    def __getattr__(attr: str) -> Placeholder:
        if attr.startswith("__"):
            raise AttributeError(f"module {module!r} has no attribute {attr!r}")
        return Placeholder(f"{module}.{attr}")

    return __getattr__


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports any missing ``<package>.<sub.module>`` as an empty stub module of placeholders.

    transformers sees the stub package as installed and imports submodules such as
    ``torchvision.transforms.functional`` while loading T5; they must import, not work.
    """

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self.package + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__getattr__ = module_getattr(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


def stub_submodules(package: str) -> None:
    """Let ``import <package>.<anything>`` succeed with stub modules (the real files are tried first)."""
    if not any(isinstance(f, _StubFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_StubFinder(package))
