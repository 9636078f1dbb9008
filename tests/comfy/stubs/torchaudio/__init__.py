from _gptimg_stub import module_getattr

__version__ = "0.0.0+gptimg.stub"
__getattr__ = module_getattr("torchaudio")

from . import transforms  # noqa: E402,F401  (`from torchaudio.transforms import MelScale`)
