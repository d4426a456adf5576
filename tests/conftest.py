"""Fixtures shared by the whole suite: tiny synthetic DCASE sets (made once per session) and a clip-table
factory; and a suite-wide check that the Keras back-end named by ``KERAS_BACKEND`` is installed (without it
every test module would fail to import Keras with a long traceback each; instead the run stops at once with
one line that names the back-end and the install command). Nothing here reads ../shared or the network."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest

from asdcore.layouts import COLUMNS
from asdcore.synthetic import generate

BACKEND_PACKAGES = {
    "jax": ("jax", 'pip install -e ".[jax]"'),
    "torch": ("torch", "pip install torch (the CPU wheel is enough)"),
}


def pytest_configure(config):
    backend = os.environ.get("KERAS_BACKEND", "").strip().lower()
    if backend in BACKEND_PACKAGES:
        package, fix = BACKEND_PACKAGES[backend]
        if importlib.util.find_spec(package) is None:
            raise pytest.UsageError(
                f"KERAS_BACKEND={backend} but the package {package!r} is not installed; {fix}, "
                "or unset KERAS_BACKEND to test on TensorFlow"
            )


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory):
    """``synthetic_set(year, **sizes)``: a synthetic DCASE data root (asdcore.synthetic.generate), made once
    per session for each distinct set of arguments; treat it as read-only."""
    made = {}

    def make(year, seed=0, preset="tiny", **sizes):
        key = (year, seed, preset, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                                for k, v in sizes.items())))
        if key not in made:
            root = tmp_path_factory.mktemp(f"synthetic{year}")
            made[key] = generate(year, root, seed=seed, preset=preset, **sizes)
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_2020(synthetic_set):
    """fan + ToyCar, every ID, 4 train and 2 + 2 test clips per ID, 10 s clips."""
    return synthetic_set(2020, seed=3)


@pytest.fixture(scope="session")
def tiny_2021(synthetic_set):
    """fan + ToyCar, sections 00-05, 4 source + 2 target train clips, 2 + 2 test clips per domain, 1 s clips."""
    return synthetic_set(2021, seed=5, duration=1.0)


@pytest.fixture()
def cli_env(tmp_path, monkeypatch):
    """Run folders and caches inside the test's own temporary folder."""
    monkeypatch.setenv("ASD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def make_clip_table(units, n_train=3, n_test=12, year=2020, part="dev", seed=0) -> pd.DataFrame:
    """A clip table in :mod:`asdcore.layouts`' columns without files: per ``(machine_type, unit, domain)``
    ``n_train`` normal train clips and ``n_test`` normal + ``n_test`` anomalous test clips, plus a ``score``
    column (normal noise, +1 for anomalies)."""
    rng = np.random.default_rng(seed)
    rows = []
    for machine_type, unit, domain in units:
        for split, labels in (("train", ["normal"] * n_train), ("test", ["normal"] * n_test + ["anomaly"] * n_test)):
            for i, label in enumerate(labels):
                rows.append({"path": "", "file": f"{split}_{unit}_{domain}_{label}_{i:04d}.wav", "year": year,
                             "part": part, "machine_type": machine_type, "unit": unit, "domain": domain,
                             "split": split, "label": label, "attributes": "", "index": f"{i:04d}"})
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["score"] = rng.normal(size=len(table)) + (table["label"] == "anomaly")
    return table


@pytest.fixture()
def clip_table():
    """The :func:`make_clip_table` factory."""
    return make_clip_table


def read_tensorboard_scalars(folder) -> dict:
    """Every scalar of the TensorBoard event files under ``folder``: ``{tag: [(step, value), ...]}``, read
    back with TensorFlow's own event reader (independent of the callback that wrote them)."""
    from pathlib import Path

    import tensorflow as tf

    scalars = {}
    for path in sorted(Path(folder).rglob("events.out.tfevents*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                scalars.setdefault(value.tag, []).append((int(event.step), number))
    return scalars


@pytest.fixture()
def tensorboard_scalars():
    """:func:`read_tensorboard_scalars`."""
    return read_tensorboard_scalars


def check_training_logged(run) -> list:
    """Assert that every unit of the run folder ``run`` that trained a network logged it: a CSV log with
    a loss and a learning rate per epoch, TensorBoard event files under the unit's ``tensorboard/``, and
    the curve ``plots/training/<unit>.png``. Returns the unit folders checked."""
    from pathlib import Path

    units = sorted(p for p in (Path(run) / "units").iterdir() if (p / "training_log.csv").is_file())
    assert units, f"no unit of {run} has a training_log.csv"
    for unit in units:
        log = pd.read_csv(unit / "training_log.csv")
        assert len(log) >= 1 and "loss" in log.columns, unit
        assert any(c.startswith("learning_rate") for c in log.columns), unit
        assert any((unit / "tensorboard").rglob("events.out.tfevents*")), unit
        assert (Path(run) / "plots" / "training" / f"{unit.name}.png").stat().st_size > 1000, unit
    return units


@pytest.fixture()
def training_logged():
    """:func:`check_training_logged`."""
    return check_training_logged
