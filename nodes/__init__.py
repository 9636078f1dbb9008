"""ComfyUI nodes of the gptimg pack: thin wrappers over gptimg_core (see extension.NODES)."""
