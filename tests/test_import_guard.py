"""gptimg_core must stay usable without ComfyUI (and light to import)."""

import subprocess
import sys


def test_importing_core_pulls_in_no_comfyui_module():
    code = (
        "import sys, gptimg_core, gptimg_core.cli, gptimg_core.shapes; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'server', 'nodes')]; "
        "assert not bad, bad; assert 'transformers' not in sys.modules, 'transformers imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
