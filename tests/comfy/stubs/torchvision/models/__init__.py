from _gptimg_stub import module_getattr

__getattr__ = module_getattr("torchvision.models")
