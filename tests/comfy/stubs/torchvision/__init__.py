from _gptimg_stub import module_getattr, stub_submodules

__version__ = "0.0.0+gptimg.stub"
__getattr__ = module_getattr("torchvision")

from . import models, transforms  # noqa: E402,F401  (`import torchvision` then `torchvision.models.x`)

stub_submodules("torchvision")  # e.g. torchvision.transforms.functional, imported by transformers
