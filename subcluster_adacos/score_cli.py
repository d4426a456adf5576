"""The ``score`` command of ``run_dcase2020.py``: anomaly scores of new recordings with a saved system.

``--model`` is a ``subcluster-adacos`` run folder (its ``models/system``) or the system folder itself. The
unit (machine type and ID) of each recording is ``--unit TYPE/id_XX``, or read from a DCASE-style path
``.../<type>/<split>/<..._id_XX_...>.wav``. One line per file: ``path,score`` (higher = more anomalous).
"""
from __future__ import annotations

import re
from pathlib import Path

from asdcore.errors import ASDError

_ID = re.compile(r"(?:^|_)(id_\d{2})(?:_|\.)")


def unit_of(path: Path, explicit: str | None, known_units) -> str:
    """The ``type/id_XX`` key of a recording: ``explicit`` when given, else parsed from the DCASE path."""
    if explicit:
        unit = explicit
    else:
        match = _ID.search(path.name)
        machine_type = path.parent.parent.name if path.parent.name in ("train", "test") else ""
        if not match or not machine_type:
            raise ASDError(f"{path}: cannot tell its machine type and ID from the path; give --unit TYPE/id_XX")
        unit = f"{machine_type}/{match.group(1)}"
    if unit not in known_units:
        raise ASDError(f"{path}: unit {unit} has no trained model; known: {', '.join(sorted(known_units)[:10])} ...")
    return unit


def add_arguments(parser, year):
    parser.add_argument("--model", type=Path, required=True,
                        help="a subcluster-adacos run folder (with models/system) or the system folder")
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE.wav", help="recordings to score")
    parser.add_argument("--unit", default=None, help="machine type and ID of every file, e.g. fan/id_00")
    parser.add_argument("--channel", type=int, default=0, help="channel of multi-channel files (default 0)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the scores to this new CSV file")


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from asdcore.audio import load_audio
    from asdcore.experiment import atomic_write_csv
    from asdcore.features import compute_logmel
    from subcluster_adacos.scoring import ScoringSystem

    folder = args.model / "models" / "system" if (args.model / "models" / "system").is_dir() else args.model
    system = ScoringSystem.load(folder)
    known = set(system.units) | set(system.mean_backends)
    units = [unit_of(path, args.unit, known) for path in args.files]
    config = system.feature_config
    features = np.concatenate([compute_logmel(load_audio(p, sr=config.sr, channel=args.channel)[None], config)
                               for p in args.files])
    scores = system.score_features(system.normalizer.transform(features), units)
    for path, score in zip(args.files, scores):
        print(f"{path},{score:.6f}")
    if args.csv is not None:
        atomic_write_csv(pd.DataFrame({"file": [str(p) for p in args.files], "unit": units, "score": scores}),
                         args.csv)
    return 0
