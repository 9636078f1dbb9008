"""gptimg: GPT-style (autoregressive, VQ-token) image generation and token editing for ComfyUI.

ComfyUI imports this folder as a package and calls `comfy_entrypoint()`. The nodes are imported only
then, so importing this file needs neither ComfyUI nor torch (pytest imports it as the rootdir package).
"""

import logging

WEB_DIRECTORY = "./web"


def comfy_entrypoint():
    """The V3 extension (nodes.extension.GPTImgExtension) listing the gptimg nodes; registers the model folders."""
    try:
        from .nodes.extension import comfy_entrypoint as entrypoint
    except ImportError:
        # ComfyUI reports only the message of an error raised here: log the traceback too
        logging.getLogger(__name__).exception("gptimg: importing the nodes failed")
        raise
    return entrypoint()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
