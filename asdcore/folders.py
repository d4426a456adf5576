"""Folders of a user's own recordings -> the clip table (the input of ``asd fit`` and ``asd score``).

The paper scripts read the DCASE layouts (:mod:`asdcore.layouts`); a user monitoring their own machines has
folders of recordings with any names. The rules here turn such folders into the same clip table, so that
every method reads them with the paper scripts' own feature, training and scoring code.

Folder rules
------------
- A recording is a ``.wav`` or ``.flac`` file (any letter case) found recursively; hidden files and folders
  (``.name``) and every other file (notes, CSV files, images) are ignored.
- ``DIR`` with sub-folders holding recordings: **each sub-folder is one machine**, named after the
  sub-folder (``DIR/pump_hall_2/**.wav`` -> machine ``pump_hall_2``).
- ``DIR`` with recordings directly inside it: ``DIR`` itself is one machine, named after ``DIR``
  (recordings directly inside a ``DIR`` that also has machine sub-folders are an error: move them into one).
- Domain: a recording below a folder named ``target`` (inside its machine folder) belongs to the machine's
  target domain (a few recordings of a changed condition, DCASE 2021 style); every other one to the source
  domain. Without target recordings a machine is scored in its source domain only.
- Labels (``--test`` folders only): a recording below a folder named ``normal`` or ``anomaly`` has that label;
  ``DIR/{normal,anomaly}/`` (no machine sub-folder) is one machine named after ``DIR``.
- A DCASE data root (a folder holding ``dev_data/`` or ``eval_data/``) is read with the DCASE layout reader
  (:func:`read_dcase_root`): its training clips are normal recordings, its labelled test clips test
  recordings, and each machine type and ID (or section) is one machine, ``fan/id_00``.

Columns: those of :data:`asdcore.layouts.COLUMNS` (``year`` 0 and ``unit`` ``id_00`` for own folders) plus
``machine`` (the machine's name as printed) and ``source_folder`` (the folder given on the command line).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from asdcore.errors import ASDError
from asdcore.layouts import COLUMNS

__all__ = ["AUDIO_EXTENSIONS", "read_folders", "read_dcase_root", "is_dcase_root", "audio_files",
           "machine_of_path", "OWN_UNIT"]

AUDIO_EXTENSIONS = (".wav", ".flac")
#: the unit of every machine read from own folders (one machine = one unit of the DCASE clip table)
OWN_UNIT = "id_00"
_LABELS = ("normal", "anomaly")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def audio_files(folder) -> list[Path]:
    """Every recording below ``folder`` (recursively, sorted, hidden files and folders skipped)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        found += [Path(root) / f for f in sorted(files)
                  if not _hidden(f) and os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS]
    return found


def is_dcase_root(folder) -> bool:
    """True for a folder holding ``dev_data/`` or ``eval_data/`` (a DCASE task 2 data root)."""
    folder = Path(folder)
    return (folder / "dev_data").is_dir() or (folder / "eval_data").is_dir()


def read_dcase_root(folder, ground_truth=None) -> pd.DataFrame:
    """A DCASE data root of any edition the layout reader knows (:func:`asdcore.layouts.read_dataset`, edition
    detected), as the clip table of this module: each ``machine_type/unit`` one machine."""
    from asdcore import layouts

    table = layouts.read_dataset(None, folder, ground_truth=ground_truth)  # the edition detected from the names
    table = table.copy()
    table["machine"] = table["machine_type"].astype(str) + "/" + table["unit"].astype(str)
    table["source_folder"] = str(folder)
    return table


def _rows(machine: str, machine_folder: Path, files, source_folder, label_from_path: bool):
    rows = []
    for path in files:
        parts = [p.lower() for p in path.relative_to(machine_folder).parts[:-1]]
        label = "normal"
        if label_from_path:
            labels = [p for p in parts if p in _LABELS]
            if not labels:
                raise ASDError(f"{path}: test recordings go below a folder named normal/ or anomaly/ "
                               f"(e.g. {machine_folder}/normal/{path.name})")
            label = labels[-1]
        rows.append({"path": str(path.resolve()), "file": path.name, "year": 0, "part": "own",
                     "machine_type": machine, "unit": OWN_UNIT, "domain": "target" if "target" in parts else "source",
                     "split": "test" if label_from_path else "train", "label": label, "attributes": "",
                     "index": "", "machine": machine, "source_folder": str(source_folder)})
    return rows


def _read_own(folder: Path, labelled: bool) -> list[dict]:
    subfolders = sorted(d for d in folder.iterdir() if d.is_dir() and not _hidden(d.name))
    loose = sorted(p for p in folder.iterdir() if p.is_file() and not _hidden(p.name)
                   and p.suffix.lower() in AUDIO_EXTENSIONS)
    rows = []
    if labelled and {d.name.lower() for d in subfolders} & set(_LABELS):
        return _rows(folder.name, folder, audio_files(folder), folder, True)  # DIR/{normal,anomaly}/
    machines = [(d, audio_files(d)) for d in subfolders]
    machines = [(d, files) for d, files in machines if files]
    if machines and loose:
        raise ASDError(f"{loose[0]}: recordings directly in {folder} beside machine sub-folders "
                       f"({machines[0][0].name}, ...); move them into a sub-folder named after their machine")
    if loose:
        return _rows(folder.name, folder, audio_files(folder), folder, labelled)
    for machine_folder, files in machines:
        rows += _rows(machine_folder.name, machine_folder, files, folder, labelled)
    return rows


def read_folders(folders, labelled: bool = False, part: str = "own") -> pd.DataFrame:
    """The clip table of one or more folders (see the module docstring for the rules).

    Parameters
    ----------
    folders : sequence of paths
        Folders of recordings (each sub-folder one machine) or DCASE data roots.
    labelled : bool
        ``--test`` folders: every recording needs a ``normal``/``anomaly`` folder above it (DCASE roots:
        their labelled test clips).
    part : str
        Written into the ``part`` column of own folders (``"own"``, ``"auxiliary"``).

    Raises
    ------
    ASDError
        One line: a folder that does not exist, holds no recording, or mixes loose recordings with machine
        sub-folders; a machine name given by two folders.
    """
    frames = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ASDError(f"{folder}: no such folder; give a folder of .wav/.flac recordings (one sub-folder "
                           "per machine)")
        if is_dcase_root(folder):
            table = read_dcase_root(folder)
            if labelled:
                table = table[(table["split"] == "test") & table["label"].isin(_LABELS)]
            else:
                table = table[table["split"] == "train"]
            if not len(table):
                raise ASDError(f"{folder}: a DCASE root without {'labelled test' if labelled else 'training'} "
                               "clips")
        else:
            rows = _read_own(folder, labelled)
            if not rows:
                raise ASDError(f"{folder}: no .wav or .flac recordings found (searched recursively); give a "
                               "folder with one sub-folder of recordings per machine")
            table = pd.DataFrame(rows, columns=COLUMNS + ["machine", "source_folder"])
            table["part"] = part
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    if not labelled:
        origin = table.groupby("machine")["source_folder"].nunique()
        twice = origin[origin > 1]
        if len(twice):
            raise ASDError(f"machine {twice.index[0]!r} comes from several folders "
                           f"({', '.join(sorted(table.loc[table['machine'] == twice.index[0], 'source_folder'].unique()))}); "
                           "rename one of the sub-folders")
    return table.reset_index(drop=True)


def machine_of_path(path, machines, explicit: str | None = None) -> str:
    """The machine a recording to score belongs to: ``explicit`` (``--machine``) when given; else the
    nearest folder above the file named like a known machine; for DCASE machines (``type/id_XX``) a folder
    named like the type and the ID in the file name; with a single known machine, that one.

    Raises :class:`ASDError` (one line) when none of these tells."""
    machines = list(machines)
    if explicit is not None:
        if explicit not in machines:
            raise ASDError(f"--machine {explicit!r} is not a machine of this system; known: {', '.join(machines[:8])}")
        return explicit
    path = Path(path)
    parents = [p.name for p in path.resolve().parents]
    by_name = {m: m for m in machines}
    for name in parents:
        if name in by_name:
            return by_name[name]
    stem = path.stem
    for machine in machines:
        if "/" in machine:
            machine_type, unit = machine.split("/", 1)
            tokens = stem.split("_")
            if machine_type in parents and any("_".join(tokens[i:i + 2]) == unit for i in range(len(tokens) - 1)):
                return machine
    if len(machines) == 1:
        return machines[0]
    raise ASDError(f"{path}: cannot tell its machine (no folder above it is named like one of "
                   f"{', '.join(machines[:6])}); put it in a folder named after its machine or give --machine")


def domain_of_path(path) -> str:
    """``"target"`` for a recording below a folder named ``target`` or named ``..._target_...`` (DCASE), else
    ``"source"``."""
    path = Path(path)
    if any(p.lower() == "target" for p in path.parts[:-1]) or "_target_" in f"_{path.stem}_":
        return "target"
    return "source"
