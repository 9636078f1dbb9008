from _gptimg_stub import module_getattr, stub_submodules

__version__ = "0.0.0+gptimg.stub"
__getattr__ = module_getattr("torchaudio")

from . import transforms  # noqa: E402,F401  (`from torchaudio.transforms import MelScale`)

stub_submodules("torchaudio")  # e.g. torchaudio.transforms.functional, imported by transformers
