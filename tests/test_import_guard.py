"""gptimg_core must stay usable without ComfyUI (and light to import)."""

import subprocess
import sys


def test_importing_core_pulls_in_no_comfyui_module():
    code = (
        "import sys, gptimg_core, gptimg_core.cli, gptimg_core.builtin.shapes; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'server', 'nodes')]; "
        "assert not bad, bad; assert 'transformers' not in sys.modules, 'transformers imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_runtime_loads_only_weights_from_the_builtin_package():
    """The inference library and the CLI never import the built-in model's world, training or evaluation."""
    code = (
        "import sys, gptimg_core, gptimg_core.cli, torch; "
        "from gptimg_core import builtin_path, generate, load_gpt; "
        "generate(load_gpt(builtin_path('c2i')), torch.tensor([1]), seed=0); "
        "tooling = [m for m in sys.modules if m.startswith(('gptimg_core.builtin.', 'gptimg_core.builtin.eval'))]; "
        "assert not tooling, tooling"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
