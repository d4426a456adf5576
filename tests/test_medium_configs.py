"""The shipped medium-run config files (configs/medium/<command>.yaml) load against each command's frozen
config (unknown keys are refused) and the "Medium runs" of docs/results.md names each one."""
import importlib
from pathlib import Path

import pytest

from asdcore.experiment import resolve_config

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {  # config file -> (method module, script)
    "subcluster-adacos": ("subcluster_adacos.experiments", "run_dcase2020.py"),
    "ddcsad": ("ddcsad.experiments", "run_dcase2020.py"),
    "multi-distribution": ("subcluster_adacos.experiments_2021", "run_dcase2021.py"),
    "smoothing": ("smoothing.experiments", "run_dcase2021.py"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_medium_config_loads(command):
    path = ROOT / "configs" / "medium" / f"{command}.yaml"
    method = importlib.import_module(COMMANDS[command][0]).METHOD
    assert method.command == command
    medium = resolve_config(method.default_config(True), path)  # raises ASDError on an unknown key
    assert type(medium) is type(method.default_config(True))
    import yaml

    def applied(config, values):  # every value of the file, read independently, is in the resolved config
        for key, value in values.items():
            if isinstance(value, dict):
                applied(getattr(config, key), value)
            else:
                got = getattr(config, key)
                assert (list(got) if isinstance(got, tuple) else got) == value, (command, key, got, value)

    applied(medium, yaml.safe_load(path.read_text(encoding="utf-8")))
    results = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")  # its "Medium runs" section
    assert f"{COMMANDS[command][1]} {command}" in results and f"configs/medium/{command}.yaml" in results


def test_medium_configs_are_only_the_four_commands():
    assert sorted(p.stem for p in (ROOT / "configs" / "medium").glob("*.yaml")) == sorted(COMMANDS)


def test_the_reg_covar_check_is_the_medium_config_with_scikit_learns_regularisation():
    """configs/checks/subcluster-adacos-medium-reg-covar-1e-6.yaml (Table II with reg_covar 1e-6, the 2020
    page) = the medium subcluster-adacos settings except reg_covar."""
    from dataclasses import replace

    method = importlib.import_module("subcluster_adacos.experiments").METHOD
    medium = resolve_config(method.default_config(True), ROOT / "configs" / "medium" / "subcluster-adacos.yaml")
    check = resolve_config(method.default_config(True),
                           ROOT / "configs" / "checks" / "subcluster-adacos-medium-reg-covar-1e-6.yaml")
    assert medium.reg_covar == 1e-3 and check == replace(medium, reg_covar=1e-6)
