"""Placeholders shared by the torchvision/torchaudio stubs (see README.md)."""


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
