"""Small folders of recordings with arbitrary names, made from :mod:`asdcore.synthetic` clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asdcore.synthetic import SR, render_clip

#: folder name -> the synthetic machine it copies (DCASE 2020 type and ID)
MACHINES = {"Pump hall 2": ("pump", "id_00"), "lüfter-A": ("fan", "id_00"), "slider.x": ("slider", "id_02")}


def write_machine(folder: Path, machine: str, n: int, label: str = "normal", split: str = "train", first: int = 0,
                  duration: float = 2.0, seed: int = 0) -> list[Path]:
    """``n`` recordings of one machine under ``folder`` with names that follow no grammar."""
    machine_type, unit = MACHINES[machine]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + n):
        wave, _ = render_clip(2020, machine_type, unit, split=split, label=label, index=i, seed=seed,
                              duration=duration)
        path = folder / f"rec {i:03d} – {machine[:3]}.{'flac' if i % 3 == 0 else 'wav'}"
        sf.write(str(path), np.round(wave * 32767).astype(np.int16), SR, subtype="PCM_16")
        paths.append(path)
    return paths


def make_own_data(root: Path, machines=("Pump hall 2", "lüfter-A"), n_train: int = 12, n_test: int = 4,
                  duration: float = 2.0) -> dict:
    """``root/normal/<machine>/...`` (training) and ``root/test/<machine>/{normal,anomaly}/...``."""
    for m in machines:
        write_machine(root / "normal" / m, m, n_train, duration=duration)
        write_machine(root / "test" / m / "normal", m, n_test, split="test", first=1000, duration=duration)
        write_machine(root / "test" / m / "anomaly", m, n_test, label="anomaly", split="test", first=2000,
                      duration=duration)
    return {"normal": root / "normal", "test": root / "test"}
