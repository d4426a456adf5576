"""A tiny synthetic DCASE 2020 data set shared by the end-to-end tests of this folder."""
import pytest

from asdcore.synthetic import generate


@pytest.fixture(scope="session")
def tiny_2020(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcase2020")
    generate(2020, root, seed=3, preset="tiny")
    return root


@pytest.fixture()
def cli_env(tmp_path, monkeypatch):
    """Run folders and caches inside the test's own temporary folder."""
    monkeypatch.setenv("ASD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path
