"""The command modules are light (issue 12, item 4): importing them, or asking a script for ``--help``,
must not load Keras or TensorFlow; the heavy method modules import Keras at their top instead."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND_MODULES = ("subcluster_adacos.experiments", "subcluster_adacos.settings_2020", "subcluster_adacos.tables_2020",
                   "subcluster_adacos.experiments_2021", "subcluster_adacos.settings_2021",
                   "subcluster_adacos.tables_2021", "ddcsad.experiments", "ddcsad.settings", "ddcsad.tables",
                   "smoothing.experiments", "smoothing.settings", "smoothing.tables", "asdcore.representations",
                   "asdcore.runner")
NO_KERAS = "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'Keras was imported'"


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_command_module_imports_no_keras(module):
    subprocess.run([sys.executable, "-c", f"import sys, {module}; {NO_KERAS}"], check=True, cwd=ROOT)


def test_package_names_still_import_lazily():
    """``from subcluster_adacos import SubClusterAdaCos`` still gives the layer (loaded on first use)."""
    code = ("import sys, subcluster_adacos; " + NO_KERAS + "; from subcluster_adacos import SubClusterAdaCos; "
            "from subcluster_adacos.layers import SubClusterAdaCos as direct; assert SubClusterAdaCos is direct")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("script, command", [("run_dcase2020.py", "subcluster-adacos"), ("run_dcase2020.py", "ddcsad"),
                                             ("run_dcase2021.py", "multi-distribution"),
                                             ("run_dcase2021.py", "smoothing")])
def test_help_needs_no_keras(script, command):
    code = (f"import sys, runpy; sys.argv = ['{script}', '{command}', '--help']\n"
            f"try:\n    runpy.run_path('{script}', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
            f"{NO_KERAS}")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    assert "usage" in out.stdout
