"""DCASE 2020-2025 task 2 folder and file-name grammars -> the clip table.

The clip table is a :class:`pandas.DataFrame` with one row per recording and the columns of
:data:`COLUMNS` (all ``str`` except ``year``):

``path``        absolute path of the recording
``file``        its base name
``year``        2020 ... 2025 (int): the edition whose grammar and evaluation rules apply
``part``        ``"dev"`` (from ``dev_data/``) or ``"eval"`` (from ``eval_data/``)
``machine_type`` the type folder name (``fan``, ``ToyCar``, ...)
``unit``        ``"id_XX"`` (2020) or ``"section_XX"`` (2021-2025), digits exactly as in the file name
``domain``      ``""`` (2020) or ``"source"`` / ``"target"`` (2021-2025; ``""`` for a 2022-2025 evaluation test
                clip until the ground truth names its domain)
``split``       ``"train"`` or ``"test"`` (``"supplemental"``: 2025 supplementary clips, only on request)
``label``       ``"normal"``, ``"anomaly"`` or ``"unknown"`` (unlabelled test clip without ground truth)
``attributes``  ``""`` when none; otherwise every ``_`` field after the index (``strength_1_ambient``)
``index``       the clip number as written in the file name (``"00000123"``, ``"0042"``)

Rows are sorted by ``(part, machine_type, unit, split, domain, file)``.

Folder layouts (REFERENCE.md section 1)
---------------------------------------
DCASE 2020 (MIMII + ToyADMOS)::

    <root>/{dev_data,eval_data}/<type>/train/normal_id_XX_NNNNNNNN.wav
    <root>/{dev_data,eval_data}/<type>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav   (dev, labelled)
    <root>/eval_data/<type>/test/id_XX_NNNNNNNN.wav                              (eval, unlabelled)

DCASE 2021 (MIMII DUE + ToyADMOS2)::

    <root>/{dev_data,eval_data}/<type>/train/section_XX_{source,target}_train_normal_NNNN_<attributes>.wav
    <root>/{dev_data,eval_data}/<type>/{source,target}_test/section_XX_<domain>_test_{normal,anomaly}_NNNN.wav
    <root>/eval_data/<type>/{source,target}_test/section_XX_<domain>_test_NNNN.wav   (unlabelled)

Decisions where the official layout says nothing
------------------------------------------------
- **Machine types.** Any type folder name is accepted (a user's own machines, or a subset of the official
  types); only hidden folders (``.name``) are skipped. The official names are in :data:`MACHINE_TYPES`.
- **Unit numbers** may have any number of digits (``id_1``, ``section_123``); the official ones have two.
- **Unlabelled test names** (``id_XX_...``, ``section_XX_source_test_NNNN.wav``) are accepted in the test
  folders of both parts; their label is ``"unknown"`` unless a ground-truth file names them. Labelled names
  are accepted in ``eval_data`` too (some redistributions rename the eval clips); a label in the name always
  wins over the ground truth. Training names must carry the label ``normal``.
- **2021 test folders.** ``source_test`` and ``target_test`` are the official ones and each must hold only
  its own domain; a single ``test`` folder (the later DCASE layout) is also accepted, the domain then comes
  from the file name. Test names may carry attributes after the index (later DCASE years do).
- **Files that are not recordings** are skipped silently: hidden files (``.DS_Store``, macOS ``._x.wav``
  shadows) and every file whose extension is neither ``.wav`` nor a known audio extension (``README``,
  ``*.csv``, ``*.txt``, ``*.md``, ``*.json``, ``Thumbs.db``, ...). A recording in another audio container
  (``.flac``, ``.mp3``, ``.ogg``, ...) is an error, as is any ``.wav`` (any letter case) whose name does not
  follow the grammar, an unexpected sub-folder, a missing or empty split folder, an empty type folder and a
  data root holding neither ``dev_data`` nor ``eval_data``. Every problem of the first kind found is
  collected and reported in one line naming at most three paths.
- **Loose files** directly inside ``dev_data``/``eval_data`` or a type folder (zip archives, notes) are
  skipped: only folders are machine types and splits.

DCASE 2022-2025 (REFERENCE.md section 10)::

    <root>/{dev_data,eval_data}/<type>/train/section_XX_{source,target}_train_normal_NNNN_<attributes>.wav
    <root>/dev_data/<type>/test/section_XX_{source,target}_test_{normal,anomaly}_NNNN_<attributes>.wav
    <root>/eval_data/<type>/test/section_XX_NNNN.wav             (unlabelled; also section_XX_test_NNNN.wav)
    <root>/{dev_data,eval_data}/<type>/attributes_XX.csv         (file_name,d1p,d1v[,d2p,d2v...])
    <root>/eval_data/<type>/supplemental/*.wav                   (2025 only; see below)

Sections: 2022 dev 00-02 and eval 03-05 of the same seven types; 2023-2025 one section ``00`` per type, and
the evaluation set holds other machine types than the development set (:data:`LATER_TYPES`). The baseline's
layout ``<root>/{dev_data,eval_data}/raw/<type>/`` is accepted too. ``<attributes>`` is every ``_`` field
after the index, kept as written (``car_C2_spd_34V_mic_1``, ``pat_00``, ``noAttribute`` for the types whose
attributes the organisers hid). A clip whose name carries no attributes (the evaluation test names) takes
them from the type folder's ``attributes_XX.csv`` when that file lists it (the value fields joined by
``_``), else from the ground truth below.

Which year: :func:`detect_year` tells the editions apart from folders and names (``source_test`` folders:
2021; ``id_XX`` names: 2020; sections other than ``00``: 2022; the machine types and the types named
``noAttribute`` tell 2023, 2024 and 2025 apart); :func:`resolve_year` forces one (``--year``).

**Released hidden attributes.** After the 2024 and 2025 challenges the organisers released the attributes of
the types named ``noAttribute``: files ``{dev_data,eval_data}/<type>/attributes_XX_{train,test}_correspondence.csv``
(``source_file_name`` = the full name with the attributes, ``target_file_name`` = the name as distributed) in the
2024 evaluator's ``ground_truth_attributes_all/`` and the baseline's ``datasets/ground_truth_attributes/
dcase202Xt2/``, and a third column of the 2024 evaluator's ``ground_truth_attributes`` files. They are read only
when asked (``read_dataset(..., revealed_attributes=<folder>)``): the challenge hid them, and the methods'
defaults reproduce the challenge conditions.

**2025 supplementary recordings** (``eval_data/<type>/supplemental/``) are skipped unless
``include_supplemental=True``; then every ``.wav`` there is a row with ``split = "supplemental"``, label
``"normal"``, no domain. None of the four methods uses them (their papers train on the labelled training
clips only), so the commands never ask for them.

Ground truth of the evaluation sets
-----------------------------------
- 2020: ``eval_data_list.csv`` from the organisers: a line holding only a machine type opens a block, then
  rows ``id_XX_NNNNNNNN.wav,<original name>,<0|1>`` (1 = anomaly). Searched, when not given, at
  ``<root>/eval_data_list.csv`` then ``<root>/eval_data/eval_data_list.csv``.
- 2021: files ``ground_truth_<type>_section_XX_<source|target>_test.csv`` with rows ``file,<0|1>``. Searched,
  when not given, in ``<root>/ground_truth/``, ``<root>/ground_truth_data/`` (the organisers' evaluator
  repository) and ``<root>`` itself (not inside ``eval_data/``: every folder there is a machine type). An
  explicit ``ground_truth`` may be the folder or a single such file.
- 2022-2025: the official evaluator's folders ``ground_truth_data/`` (rows ``name,<0|1>``, 1 = anomaly),
  ``ground_truth_domain/`` (rows ``name,<0|1>``, 1 = target) and, when present, ``ground_truth_attributes/``
  (2023/2024: ``name,<full name>``; 2022: ``<type>/attributes_XX.csv`` with a ``file_name_with_full_attributes``
  column), each file named ``ground_truth_<type>_section_XX_test.csv``; or the baseline's list
  ``eval_data_list_<year>.csv`` (a line holding a machine type opens a block, then rows ``name,<full name>``; the
  full name gives domain, label and attributes). ``--ground-truth`` may name the evaluator's folder, its
  ``ground_truth_data`` folder, or the list. Searched, when not given, in ``<root>`` (``ground_truth_data/``
  beside ``dev_data/``) and as ``<root>/eval_data_list_<year>.csv``. Where both give a label,
  ``ground_truth_data`` wins (the official scores use it).
A ground truth given explicitly that labels none of the unlabelled test clips is an error (wrong file or
wrong year); any ground truth that leaves some unlabelled test clips gives a warning.
"""

from __future__ import annotations

import csv
import os
import re
import warnings

import pandas as pd

from .errors import DataLayoutError

__all__ = [
    "COLUMNS",
    "YEARS",
    "LATER_YEARS",
    "LATER_TYPES",
    "HIDDEN_ATTRIBUTES",
    "MACHINE_TYPES",
    "OFFICIAL_UNITS",
    "parse_name_2020",
    "parse_name_2021",
    "read_dcase2020",
    "read_dcase2021",
    "read_dataset",
    "read_eval_data_list",
    "read_ground_truth_2021",
    "read_ground_truth_later",
    "read_attribute_csv",
    "read_attribute_correspondence",
    "read_revealed_attributes",
    "parse_name_later",
    "detect_year",
    "resolve_year",
]

COLUMNS = ["path", "file", "year", "part", "machine_type", "unit", "domain", "split", "label",
           "attributes", "index"]

#: Official machine types per year (other type folder names are accepted too).
#: The editions read here; 2022-2025 share one grammar (REFERENCE.md section 10).
YEARS = (2020, 2021, 2022, 2023, 2024, 2025)
LATER_YEARS = (2022, 2023, 2024, 2025)

_DEV_LATER = ("ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve")
#: Official machine types of the later editions per part (2023-2025: the evaluation set has other types).
LATER_TYPES = {
    2022: {"dev": _DEV_LATER, "eval": _DEV_LATER},
    2023: {"dev": _DEV_LATER, "eval": ("ToyDrone", "ToyNscale", "ToyTank", "Vacuum", "bandsaw", "grinder", "shaker")},
    2024: {"dev": _DEV_LATER, "eval": ("3DPrinter", "AirCompressor", "Scanner", "ToyCircuit", "HoveringDrone",
                                       "HairDryer", "ToothBrush", "RoboticArm", "BrushlessMotor")},
    2025: {"dev": _DEV_LATER, "eval": ("ToyRCCar", "ToyPet", "HomeCamera", "AutoTrash", "Polisher", "ScrewFeeder",
                                       "BandSealer", "CoffeeGrinder")},
}
#: Types whose file names carry ``noAttribute`` instead of their attributes (hidden by the organisers).
HIDDEN_ATTRIBUTES = {
    2022: {"dev": (), "eval": ()},
    2023: {"dev": (), "eval": ()},
    2024: {"dev": ("ToyTrain", "gearbox", "slider"),
           "eval": ("AirCompressor", "BrushlessMotor", "HoveringDrone", "ToothBrush")},
    2025: {"dev": ("ToyTrain", "bearing", "slider"), "eval": ("AutoTrash", "Polisher", "ScrewFeeder", "ToyPet")},
}

#: Official machine types per year (other type folder names are accepted too); 2022-2025: dev types first.
MACHINE_TYPES = {
    2020: ("ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"),
    2021: ("fan", "gearbox", "pump", "slider", "valve", "ToyCar", "ToyTrain"),
    **{y: LATER_TYPES[y]["dev"] + tuple(t for t in LATER_TYPES[y]["eval"] if t not in LATER_TYPES[y]["dev"])
       for y in LATER_YEARS},
}

_IDS_MIMII = {"dev": ("00", "02", "04", "06"), "eval": ("01", "03", "05")}
#: Official units per year, part and machine type (REFERENCE.md section 1): 41 IDs in 2020, 42 sections in 2021.
OFFICIAL_UNITS = {
    2020: {
        "dev": {**{t: tuple(f"id_{i}" for i in _IDS_MIMII["dev"]) for t in ("fan", "pump", "slider", "valve")},
                "ToyCar": ("id_01", "id_02", "id_03", "id_04"), "ToyConveyor": ("id_01", "id_02", "id_03")},
        "eval": {**{t: tuple(f"id_{i}" for i in _IDS_MIMII["eval"]) for t in ("fan", "pump", "slider", "valve")},
                 "ToyCar": ("id_05", "id_06", "id_07"), "ToyConveyor": ("id_04", "id_05", "id_06")},
    },
    2021: {
        "dev": {t: ("section_00", "section_01", "section_02") for t in MACHINE_TYPES[2021]},
        "eval": {t: ("section_03", "section_04", "section_05") for t in MACHINE_TYPES[2021]},
    },
    2022: {
        "dev": {t: ("section_00", "section_01", "section_02") for t in LATER_TYPES[2022]["dev"]},
        "eval": {t: ("section_03", "section_04", "section_05") for t in LATER_TYPES[2022]["eval"]},
    },
    **{y: {part: {t: ("section_00",) for t in LATER_TYPES[y][part]} for part in ("dev", "eval")}
       for y in (2023, 2024, 2025)},
}

_PARTS = (("dev", "dev_data"), ("eval", "eval_data"))
_SPLIT_FOLDERS = {2020: ("train", "test"), 2021: ("train", "source_test", "target_test", "test"),
                  **{y: ("train", "test", "supplemental") for y in LATER_YEARS}}
# extensions of audio containers other than WAV: such a file is a recording in the wrong format -> error
_OTHER_AUDIO = frozenset({".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".m4a", ".aac",
                          ".wma", ".au", ".snd", ".caf", ".w64", ".rf64", ".sph", ".nist", ".raw", ".pcm"})

_WAV = r"\.[wW][aA][vV]"
_RE_2020 = re.compile(r"(?:(normal|anomaly)_)?id_(\d+)_(\d+)" + _WAV)
_RE_2021 = re.compile(r"section_(\d+)_(source|target)_(train|test)_(?:(normal|anomaly)_)?(\d+)(?:_(.+))?"
                      + _WAV)
_RE_GT_2021 = re.compile(r"ground_truth_(.+)_section_(\d+)_(source|target)_test\.csv")
_RE_LATER_EVAL = re.compile(r"section_(\d+)_(?:test_)?(\d+)" + _WAV)
_RE_LATER_SUPPLEMENTAL = re.compile(r"section_(\d+)_(.*)" + _WAV)
_RE_GT_LATER = re.compile(r"ground_truth_(.+)_section_(\d+)_test\.csv")
_RE_ATTRIBUTE_CSV = re.compile(r"attributes_(\d+)\.csv")
_RE_CORRESPONDENCE = re.compile(r"attributes_(\d+)_(train|test)_correspondence\.csv")

_EXPECTED_2020 = ("train 'normal_id_XX_NNNNNNNN.wav'; test '{normal,anomaly}_id_XX_NNNNNNNN.wav' "
                  "or unlabelled 'id_XX_NNNNNNNN.wav'")
_EXPECTED_LATER = ("train 'section_XX_{source,target}_train_normal_NNNN_<attributes>.wav'; "
                   "test 'section_XX_{source,target}_test_{normal,anomaly}_NNNN_<attributes>.wav' "
                   "or unlabelled 'section_XX_NNNN.wav'")
_EXPECTED_2021 = ("train 'section_XX_{source,target}_train_normal_NNNN[_attributes].wav'; "
                  "test 'section_XX_{source,target}_test_{normal,anomaly}_NNNN.wav' "
                  "or unlabelled 'section_XX_{source,target}_test_NNNN.wav'")


class _BadName(DataLayoutError):
    """A file name outside the grammar; keeps the reason apart so problems can be grouped."""

    def __init__(self, file, why, expected):
        self.why = why
        self.expected = expected
        super().__init__(f"file name {file!r} {why}; expected {expected}")


def _bad_name(file, why, expected):
    return _BadName(file, why, expected)


def parse_name_2020(file: str, part: str, split: str) -> dict:
    """Parse a DCASE 2020 task 2 file name.

    Parameters
    ----------
    file : str
        Base name, e.g. ``normal_id_01_00000000.wav``, ``anomaly_id_02_00000123.wav`` or (unlabelled test
        clip) ``id_05_00000001.wav``.
    part : {"dev", "eval"}
        Not used by the grammar (labelled and unlabelled names are accepted in both parts); kept so both
        years' parsers have the same shape.
    split : {"train", "test"}
        The folder the file lies in.

    Returns
    -------
    dict
        ``unit, domain, split, label, attributes, index`` (``domain`` and ``attributes`` are ``""``).

    Raises
    ------
    DataLayoutError
        For a name outside the grammar, or a training clip not labelled ``normal``.
    """
    m = _RE_2020.fullmatch(file)
    if m is None:
        raise _bad_name(file, "is not a DCASE 2020 task 2 name", _EXPECTED_2020)
    label, unit, index = m.groups()
    if split == "train" and label != "normal":
        raise _bad_name(file, "lies in a train folder but is not labelled normal", _EXPECTED_2020)
    if split not in ("train", "test"):
        raise DataLayoutError(f"split {split!r} for {file!r}; expected 'train' or 'test'")
    return {"unit": f"id_{unit}", "domain": "", "split": split, "label": label or "unknown",
            "attributes": "", "index": index}


def parse_name_2021(file: str, part: str, split_folder: str) -> dict:
    """Parse a DCASE 2021 task 2 file name.

    Parameters
    ----------
    file : str
        Base name, e.g. ``section_00_source_train_normal_0000_strength_1_ambient.wav``,
        ``section_01_target_test_anomaly_0042.wav`` or (unlabelled) ``section_03_target_test_0007.wav``.
    part : {"dev", "eval"}
        Not used by the grammar; kept for symmetry with :func:`parse_name_2020`.
    split_folder : {"train", "source_test", "target_test", "test"}
        The folder the file lies in; the name must agree with it (split, and domain for ``*_test``).

    Returns
    -------
    dict
        ``unit, domain, split, label, attributes, index``; ``attributes`` is every ``_`` field after the
        index (``"strength_1_ambient"``), ``""`` when there is none.

    Raises
    ------
    DataLayoutError
        For a name outside the grammar or one that disagrees with its folder.
    """
    m = _RE_2021.fullmatch(file)
    if m is None:
        raise _bad_name(file, "is not a DCASE 2021 task 2 name", _EXPECTED_2021)
    section, domain, split, label, index, attributes = m.groups()
    if split_folder == "train":
        if split != "train":
            raise _bad_name(file, "lies in a train folder but is not a train name", _EXPECTED_2021)
        if label != "normal":
            raise _bad_name(file, "lies in a train folder but is not labelled normal", _EXPECTED_2021)
    elif split_folder in ("source_test", "target_test", "test"):
        if split != "test":
            raise _bad_name(file, f"lies in a {split_folder} folder but is not a test name", _EXPECTED_2021)
        if split_folder != "test" and split_folder != f"{domain}_test":
            raise _bad_name(file, f"is a {domain} clip in the {split_folder} folder",
                            f"{domain} test clips in {domain}_test/")
    else:
        raise DataLayoutError(f"split folder {split_folder!r} for {file!r}; expected one of "
                              "train, source_test, target_test, test")
    return {"unit": f"section_{section}", "domain": domain, "split": split, "label": label or "unknown",
            "attributes": attributes or "", "index": index}


def parse_name_later(file: str, part: str, split_folder: str) -> dict:
    """Parse a DCASE 2022-2025 task 2 file name (one grammar for the four editions).

    Parameters
    ----------
    file : str
        Base name, e.g. ``section_00_source_train_normal_0001_car_B2_spd_10_mic_1.wav``,
        ``section_00_target_test_anomaly_0037_noAttribute.wav`` or (unlabelled evaluation test clip)
        ``section_03_0042.wav`` / ``section_03_test_0042.wav``.
    part : {"dev", "eval"}
        Not used by the grammar; kept for symmetry with the other parsers.
    split_folder : {"train", "test", "supplemental"}
        The folder the file lies in; the name must agree with it.

    Returns
    -------
    dict
        ``unit, domain, split, label, attributes, index``; ``domain`` is ``""`` and ``label`` ``"unknown"``
        for an unlabelled name (the ground truth fills them). A supplemental clip (2025) keeps everything after
        ``section_XX_`` as its ``attributes``, label ``"normal"``.
    """
    if split_folder == "supplemental":
        m = _RE_LATER_SUPPLEMENTAL.fullmatch(file)
        if m is None:
            raise _bad_name(file, "is not a supplemental clip name", "'section_XX_<anything>.wav'")
        return {"unit": f"section_{m.group(1)}", "domain": "", "split": "supplemental", "label": "normal",
                "attributes": m.group(2), "index": ""}
    if split_folder not in ("train", "test"):
        raise DataLayoutError(f"split folder {split_folder!r} for {file!r}; expected 'train' or 'test'")
    m = _RE_2021.fullmatch(file)
    if m is None:
        short = _RE_LATER_EVAL.fullmatch(file)
        if short is None or split_folder != "test":
            raise _bad_name(file, "is not a DCASE 2022-2025 task 2 name", _EXPECTED_LATER)
        return {"unit": f"section_{short.group(1)}", "domain": "", "split": "test", "label": "unknown",
                "attributes": "", "index": short.group(2)}
    section, domain, split, label, index, attributes = m.groups()
    if split != split_folder:
        raise _bad_name(file, f"lies in a {split_folder} folder but is a {split} name", _EXPECTED_LATER)
    if split == "train" and label != "normal":
        raise _bad_name(file, "lies in a train folder but is not labelled normal", _EXPECTED_LATER)
    return {"unit": f"section_{section}", "domain": domain, "split": split, "label": label or "unknown",
            "attributes": attributes or "", "index": index}


class _Problems:
    """Collects layout problems; raises one error for the first kind, naming at most three paths."""

    def __init__(self):
        self.items = []  # (kind message, path)

    def add(self, kind, path):
        self.items.append((kind, str(path)))

    def raise_if_any(self):
        if not self.items:
            return
        kind = self.items[0][0]
        paths = [p for k, p in self.items if k == kind]
        shown = ", ".join(paths[:3])
        more = f" (and {len(paths) - 3} more)" if len(paths) > 3 else ""
        other = len(self.items) - len(paths)
        tail = f"; {other} other layout problem(s) not shown" if other else ""
        message = kind.replace("{n}", str(len(paths))).replace("{paths}", shown + more)
        raise DataLayoutError(message + tail)


def _is_hidden(name):
    return name.startswith(".")


def _part_path(year, root_path, folder):
    """``<root>/<folder>``, or ``<root>/<folder>/raw`` (the 2023+ baseline's layout) for the later years."""
    path = os.path.join(root_path, folder)
    if year in LATER_YEARS and os.path.isdir(os.path.join(path, "raw")):
        return os.path.join(path, "raw")
    return path


def _scan(year, root, include_supplemental=False):
    """One ``os.scandir`` pass over ``root``; returns the rows (tuples in COLUMNS order)."""
    if root is None:
        raise DataLayoutError(f"no data root given; expected a folder holding dev_data/ and/or eval_data/ "
                              f"(DCASE {year} task 2 layout)")
    root_path = os.path.abspath(os.path.expanduser(os.fspath(root)))
    layout_hint = f"a folder holding dev_data/ and/or eval_data/ (DCASE {year} task 2 layout)"
    if not os.path.exists(root_path):
        raise DataLayoutError(f"data root {root_path} does not exist; expected {layout_hint}")
    if not os.path.isdir(root_path):
        raise DataLayoutError(f"data root {root_path} is not a folder; expected {layout_hint}")
    parts = [(part, _part_path(year, root_path, folder)) for part, folder in _PARTS
             if os.path.isdir(os.path.join(root_path, folder))]
    if not parts:
        with os.scandir(root_path) as it:
            names = sorted(e.name for e in it if not _is_hidden(e.name))
        hint = ""
        if set(names) & set(_SPLIT_FOLDERS[2020] + _SPLIT_FOLDERS[2021]):
            hint = " (it looks like a machine type folder: pass the folder two levels up)"
        elif set(names) & set().union(*MACHINE_TYPES.values()):
            hint = " (it looks like a dev_data or eval_data folder itself: pass its parent)"
        raise DataLayoutError(f"data root {root_path} holds neither dev_data/ nor eval_data/{hint}; "
                              f"expected {layout_hint}")

    split_folders = _SPLIT_FOLDERS[year]
    parse = {2020: parse_name_2020, 2021: parse_name_2021}.get(year, parse_name_later)
    expected_names = {2020: _EXPECTED_2020, 2021: _EXPECTED_2021}.get(year, _EXPECTED_LATER)
    if year == 2020:
        expected_splits = "train/ and test/"
    elif year == 2021:
        expected_splits = "train/ and source_test/ + target_test/ (or one test/)"
    else:
        expected_splits = "train/ and test/"
    problems = _Problems()
    rows = []
    for part, part_path in parts:
        with os.scandir(part_path) as it:
            type_entries = sorted((e for e in it if e.is_dir() and not _is_hidden(e.name)), key=lambda e: e.name)
        if not type_entries:
            problems.add("{n} data folder(s) hold no machine type folder: {paths}; expected "
                         f"<type>/ folders (e.g. {', '.join(MACHINE_TYPES[year][:3])}) with {expected_splits}",
                         part_path)
            continue
        for type_entry in type_entries:
            machine_type = type_entry.name
            with os.scandir(type_entry.path) as it:
                sub = {e.name: e.path for e in it if e.is_dir() and not _is_hidden(e.name)}
            if not sub:
                problems.add("{n} machine type folder(s) are empty: {paths}; expected " + expected_splits,
                             type_entry.path)
                continue
            unknown = sorted(set(sub) - set(split_folders))
            other_year = 2021 if year != 2021 else 2020
            for name in unknown:
                hint = ""
                if name in _SPLIT_FOLDERS[other_year] and name not in ("train", "test"):
                    hint = f" (a DCASE {other_year} folder name: is this DCASE {other_year} data?)"
                problems.add("{n} unexpected folder(s): {paths}; expected only " + expected_splits + hint,
                             sub[name])
            if year != 2021:
                needed = ["train", "test"]
            elif "test" in sub and not ({"source_test", "target_test"} & set(sub)):
                needed = ["train", "test"]
            else:
                needed = ["train", "source_test", "target_test"]
            for name in needed:
                if name not in sub:
                    problems.add("{n} split folder(s) missing: {paths}; expected " + expected_splits,
                                 os.path.join(type_entry.path, name))
            for split_folder in split_folders:
                if split_folder not in sub or (split_folder == "supplemental" and not include_supplemental):
                    continue
                split_path = sub[split_folder]
                n_wav = 0
                with os.scandir(split_path) as it:
                    for entry in it:
                        name = entry.name
                        if _is_hidden(name):
                            continue
                        ext = os.path.splitext(name)[1].lower()
                        if entry.is_dir():
                            problems.add("{n} unexpected sub-folder(s) inside split folders: {paths}; "
                                         "expected only .wav recordings there", entry.path)
                            continue
                        if ext in _OTHER_AUDIO:
                            problems.add("{n} recording(s) not in WAV format: {paths}; expected .wav files "
                                         "(convert them, e.g. with soundfile or sox)", entry.path)
                            continue
                        if ext != ".wav":
                            continue  # README, csv, txt, ...: not a recording, skipped on purpose
                        n_wav += 1
                        try:
                            fields = parse(name, part, split_folder)
                        except _BadName as err:
                            problems.add("{n} recording name(s) " + err.why + ": {paths}; expected "
                                         + err.expected, entry.path)
                            continue
                        rows.append((entry.path, name, year, part, machine_type, fields["unit"],
                                     fields["domain"], fields["split"], fields["label"], fields["attributes"],
                                     fields["index"]))
                if n_wav == 0:
                    problems.add("{n} split folder(s) hold no .wav recording: {paths}; expected DCASE "
                                 f"{year} recordings ({expected_names})", split_path)
    problems.raise_if_any()
    return root_path, rows


def read_eval_data_list(path) -> dict:
    """Read the organisers' DCASE 2020 ``eval_data_list.csv``.

    A line holding only a machine type opens a block; the rows that follow are
    ``id_XX_NNNNNNNN.wav,<original name>,<0|1>`` (the last field is the label, 1 = anomaly).

    Returns
    -------
    dict
        ``{(machine_type, file): "normal" | "anomaly"}``.
    """
    path = os.fspath(path)
    labels = {}
    machine_type = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for line_no, row in enumerate(csv.reader(f), start=1):
                row = [c.strip() for c in row]
                while row and row[-1] == "":
                    row.pop()
                if not row:
                    continue
                if len(row) == 1:
                    machine_type = row[0]
                    continue
                if machine_type is None:
                    raise DataLayoutError(f"{path} line {line_no}: a clip row before any machine type line; "
                                          "expected a line holding only a machine type name to open each block")
                value = row[-1]
                if value not in ("0", "1"):
                    raise DataLayoutError(f"{path} line {line_no}: label {value!r} is not 0 or 1; expected rows "
                                          "'id_XX_NNNNNNNN.wav,<original name>,<0|1>'")
                labels[(machine_type, row[0])] = "anomaly" if value == "1" else "normal"
    except (OSError, UnicodeDecodeError) as err:
        raise DataLayoutError(f"{path}: cannot read the ground truth file ({err}); expected the organisers' "
                              "eval_data_list.csv") from None
    return labels


def read_ground_truth_2021(location) -> dict:
    """Read the DCASE 2021 ground-truth files ``ground_truth_<type>_section_XX_<domain>_test.csv``.

    Parameters
    ----------
    location : path
        A folder holding the files, or one such file.

    Returns
    -------
    dict
        ``{(machine_type, file): "normal" | "anomaly"}``.
    """
    location = os.fspath(location)
    if os.path.isdir(location):
        with os.scandir(location) as it:
            files = sorted(e.path for e in it if e.is_file() and _RE_GT_2021.fullmatch(e.name))
    else:
        files = [location]
    labels = {}
    for path in files:
        m = _RE_GT_2021.fullmatch(os.path.basename(path))
        if m is None:
            raise DataLayoutError(f"{path}: not a DCASE 2021 ground-truth file name; expected "
                                  "'ground_truth_<type>_section_XX_<source|target>_test.csv'")
        machine_type = m.group(1)
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                for line_no, row in enumerate(csv.reader(f), start=1):
                    row = [c.strip() for c in row]
                    if not any(row):
                        continue
                    if len(row) < 2 or row[1] not in ("0", "1"):
                        raise DataLayoutError(f"{path} line {line_no}: expected a row 'file,<0|1>', "
                                              f"found {','.join(row)!r}")
                    labels[(machine_type, row[0])] = "anomaly" if row[1] == "1" else "normal"
        except (OSError, UnicodeDecodeError) as err:
            raise DataLayoutError(f"{path}: cannot read the ground truth file ({err})") from None
    return labels


def _csv_rows(path, what):
    """Rows of a small csv file (cells stripped, blank rows dropped); one-line error when unreadable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [[c.strip() for c in row] for row in csv.reader(f) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError) as err:
        raise DataLayoutError(f"{path}: cannot read the {what} ({err})") from None


def read_attribute_csv(path) -> dict:
    """Read a DCASE 2022-2025 ``attributes_XX.csv``: ``{file base name: attribute string}``.

    The header is ``file_name,d1p,d1v[,d2p,d2v...]`` (``file_name`` = ``<type>/<split>/<name>.wav``); the
    attribute string joins the parameter/value fields with ``_`` (``car_C2_spd_34V``), skipping empty ones. A
    ``file_name_with_full_attributes`` column (the 2022 evaluator's copy) is not an attribute field.
    """
    rows = _csv_rows(os.fspath(path), "attribute file")
    if not rows or rows[0][0] != "file_name":
        raise DataLayoutError(f"{path}: expected a header starting with 'file_name' "
                              "(file_name,d1p,d1v[,d2p,d2v...])")
    header = rows[0]
    fields = [i for i, name in enumerate(header) if i > 0 and name != "file_name_with_full_attributes"]
    out = {}
    for row in rows[1:]:
        values = [row[i] for i in fields if i < len(row) and row[i]]
        out[os.path.basename(row[0])] = "_".join(values)
    return out


def read_attribute_correspondence(path) -> dict:
    """Read a released ``attributes_XX_{train,test}_correspondence.csv`` (DCASE 2024 and 2025 types whose
    attributes were hidden): ``{distributed name: attribute string}``.

    Rows ``source_file_name,target_file_name``: the first is the full name with the attributes
    (``section_00_source_train_normal_0001_pro_A_wt_200.wav``), the second the name the clip was distributed
    under (``section_00_source_train_normal_0001_noAttribute.wav``, or an evaluation test name
    ``section_00_0095.wav``). The attribute string is every ``_`` field after the index of the full name.
    """
    rows = _csv_rows(os.fspath(path), "attribute correspondence file")
    if not rows or rows[0][:2] != ["source_file_name", "target_file_name"]:
        raise DataLayoutError(f"{path}: expected a header 'source_file_name,target_file_name' (the organisers' "
                              "attributes_XX_<train|test>_correspondence.csv)")
    out = {}
    for line_no, row in enumerate(rows[1:], start=2):
        m = _RE_2021.fullmatch(os.path.basename(row[0])) if len(row) >= 2 else None
        if m is None:
            raise DataLayoutError(f"{path} line {line_no}: {row[0]!r} is not a full DCASE 2022-2025 name "
                                  "'section_XX_<domain>_<train|test>_<label>_NNNN_<attributes>.wav'")
        out[os.path.basename(row[1])] = m.group(6) or ""
    return out


def read_revealed_attributes(location) -> dict:
    """Every released attribute correspondence below ``location``: ``{(part, machine_type, name): attributes}``.

    Files ``.../{dev_data,eval_data}/<type>/attributes_XX_{train,test}_correspondence.csv``: the 2024
    evaluator's ``ground_truth_attributes_all/`` (or the evaluator's folder holding it), the baseline's
    ``datasets/ground_truth_attributes/dcase202Xt2/``, or a data root where they were copied beside
    ``attributes_XX.csv``. Split folders (``train``, ``test``, ``supplemental``) are not searched.
    """
    location = os.path.abspath(os.path.expanduser(os.fspath(location)))
    if not os.path.isdir(location):
        raise DataLayoutError(f"attribute correspondence folder {location} does not exist; expected a folder "
                              "holding {dev_data,eval_data}/<type>/attributes_XX_<train|test>_correspondence.csv")
    out = {}
    for folder, subfolders, files in os.walk(location):
        subfolders[:] = sorted(d for d in subfolders if not _is_hidden(d) and d not in ("train", "test", "supplemental"))
        part = {"dev_data": "dev", "eval_data": "eval"}.get(os.path.basename(os.path.dirname(folder)))
        if part is None:
            continue
        machine_type = os.path.basename(folder)
        for name in sorted(files):
            if _RE_CORRESPONDENCE.fullmatch(name):
                for clip, attributes in read_attribute_correspondence(os.path.join(folder, name)).items():
                    out[(part, machine_type, clip)] = attributes
    return out


def _full_name_fields(full_name):
    """domain, label, attributes of a full later-year test name (``.wav`` optional); None when not one."""
    name = full_name if full_name.lower().endswith(".wav") else full_name + ".wav"
    m = _RE_2021.fullmatch(os.path.basename(name))
    if m is None or m.group(3) != "test" or m.group(4) is None:
        return None
    return {"domain": m.group(2), "label": m.group(4), "attributes": m.group(6) or ""}


def _binary_rows(path, what):
    """``{name: 0|1}`` from a headerless ``name,<0|1>`` file."""
    out = {}
    for line_no, row in enumerate(_csv_rows(path, what), start=1):
        if len(row) < 2 or row[1] not in ("0", "1"):
            raise DataLayoutError(f"{path} line {line_no}: expected a row 'file,<0|1>', found {','.join(row)!r}")
        out[row[0]] = int(row[1])
    return out


def _gt_files(folder):
    if not os.path.isdir(folder):
        return []
    with os.scandir(folder) as it:
        return sorted((e.path, _RE_GT_LATER.fullmatch(e.name)) for e in it
                      if e.is_file() and _RE_GT_LATER.fullmatch(e.name))


def _read_eval_list_later(path):
    """The baseline's ``eval_data_list_<year>.csv``: type lines, then ``name,<full name>`` rows."""
    out = {}
    machine_type = None
    for line_no, row in enumerate(_csv_rows(path, "ground truth list"), start=1):
        while row and row[-1] == "":
            row.pop()
        if len(row) == 1:
            machine_type = row[0]
            continue
        if machine_type is None:
            raise DataLayoutError(f"{path} line {line_no}: a clip row before any machine type line; expected a "
                                  "line holding only a machine type name to open each block")
        fields = _full_name_fields(row[1])
        if fields is None:
            raise DataLayoutError(f"{path} line {line_no}: {row[1]!r} is not a full test name "
                                  "'section_XX_<domain>_test_<label>_NNNN_<attributes>.wav'")
        out[(machine_type, row[0])] = fields
    return out


def read_ground_truth_later(location) -> dict:
    """Read the DCASE 2022-2025 evaluation ground truth (see the module docstring for the accepted forms).

    Returns
    -------
    dict
        ``{(machine_type, file): {"label": ..., "domain": ..., "attributes": ...}}`` with the keys each source
        provides (``label`` from ``ground_truth_data`` wins over one read from a full name).
    """
    location = os.path.abspath(os.fspath(location))
    if os.path.isfile(location):
        if _RE_GT_LATER.fullmatch(os.path.basename(location)):
            machine_type = _RE_GT_LATER.fullmatch(os.path.basename(location)).group(1)
            return {(machine_type, name): {"label": "anomaly" if v else "normal"}
                    for name, v in _binary_rows(location, "ground truth file").items()}
        return _read_eval_list_later(location)
    if os.path.basename(location) == "ground_truth_data" and not os.path.isdir(os.path.join(location,
                                                                                              "ground_truth_data")):
        location = os.path.dirname(location)
    out = {}

    def merge(key, fields, overwrite):
        entry = out.setdefault(key, {})
        for k, v in fields.items():
            if overwrite or k not in entry:
                entry[k] = v

    # full names first (lowest priority), then domains, then the labels of ground_truth_data
    with os.scandir(location) as it:
        lists = sorted(e.path for e in it if e.is_file() and e.name.startswith("eval_data_list")
                       and e.name.endswith(".csv"))
    for path in lists:
        try:
            for key, fields in _read_eval_list_later(path).items():
                merge(key, fields, False)
        except DataLayoutError:
            continue  # a 2020 eval_data_list.csv lying beside: not this grammar
    attributes_dir = os.path.join(location, "ground_truth_attributes")
    for path, m in _gt_files(attributes_dir):
        for line_no, row in enumerate(_csv_rows(path, "ground truth attributes"), start=1):
            fields = _full_name_fields(row[1]) if len(row) >= 2 else None
            if fields is not None:
                merge((m.group(1), row[0]), fields, True)
                # 2024: a third column names the hidden types' clips with their released attributes
                revealed = _full_name_fields(row[2]) if len(row) >= 3 else None
                if revealed is not None:
                    merge((m.group(1), row[0]), {"revealed": revealed["attributes"]}, True)
    if os.path.isdir(attributes_dir):  # 2022: ground_truth_attributes/<type>/attributes_XX.csv
        with os.scandir(attributes_dir) as it:
            type_dirs = sorted((e.name, e.path) for e in it if e.is_dir())
        for machine_type, folder in type_dirs:
            with os.scandir(folder) as it:
                files = sorted(e.path for e in it if _RE_ATTRIBUTE_CSV.fullmatch(e.name))
            for path in files:
                rows = _csv_rows(path, "attribute file")
                if not rows or "file_name_with_full_attributes" not in rows[0]:
                    continue
                col = rows[0].index("file_name_with_full_attributes")
                for row in rows[1:]:
                    fields = _full_name_fields(row[col]) if col < len(row) else None
                    if fields is not None:
                        merge((machine_type, os.path.basename(row[0])), fields, True)
    for path, m in _gt_files(os.path.join(location, "ground_truth_domain")):
        for name, v in _binary_rows(path, "domain ground truth").items():
            merge((m.group(1), name), {"domain": "target" if v else "source"}, True)
    for path, m in _gt_files(os.path.join(location, "ground_truth_data")):
        for name, v in _binary_rows(path, "ground truth file").items():
            merge((m.group(1), name), {"label": "anomaly" if v else "normal"}, True)
    for path, m in _gt_files(location):  # the ground_truth_data files themselves given as the folder
        for name, v in _binary_rows(path, "ground truth file").items():
            merge((m.group(1), name), {"label": "anomaly" if v else "normal"}, True)
    return out


def _find_ground_truth_later(year, root_path, ground_truth):
    """Return (ground truth dict or None, where, explicit)."""
    if ground_truth is not None:
        gt = os.path.abspath(os.path.expanduser(os.fspath(ground_truth)))
        if not os.path.exists(gt):
            raise DataLayoutError(f"ground truth {gt} does not exist; expected the evaluator's folder (holding "
                                  f"ground_truth_data/) or eval_data_list_{year}.csv")
        found = read_ground_truth_later(gt)
        if not found:
            raise DataLayoutError(f"ground truth {gt} holds no DCASE 2022-2025 ground truth; expected the "
                                  f"evaluator's folder (ground_truth_data/, ground_truth_domain/) or "
                                  f"eval_data_list_{year}.csv")
        return found, gt, True
    for cand in (os.path.join(root_path, "ground_truth_data"), os.path.join(root_path, f"eval_data_list_{year}.csv")):
        if os.path.exists(cand):
            found = read_ground_truth_later(cand)
            if found:
                return found, cand, False
    return None, None, False


def _attributes_from_csv(rows):
    """Fill the attributes of clips whose names carry none from their type folder's attributes_XX.csv."""
    folders = {}
    for i, r in enumerate(rows):
        if r[9] == "" and r[7] != "supplemental":
            folders.setdefault(os.path.dirname(os.path.dirname(r[0])), []).append(i)
    for folder, indices in folders.items():
        with os.scandir(folder) as it:
            files = sorted(e.path for e in it if e.is_file() and _RE_ATTRIBUTE_CSV.fullmatch(e.name))
        table = {}
        for path in files:
            table.update(read_attribute_csv(path))
        for i in indices:
            value = table.get(rows[i][1])
            if value:
                rows[i] = rows[i][:9] + (value,) + rows[i][10:]


def _reveal(rows, truth, revealed_attributes):
    """Replace ``noAttribute`` (or no attributes) by the released attributes where they name the clip."""
    table = read_revealed_attributes(revealed_attributes)
    hits = 0
    for i, r in enumerate(rows):
        if r[9] not in ("", "noAttribute"):
            continue
        value = table.get((r[3], r[4], r[1]))
        if value is None and truth is not None:
            value = truth.get((r[4], r[1]), {}).get("revealed")
        if value:
            rows[i] = r[:9] + (value,) + r[10:]
            hits += 1
    if hits == 0:
        raise DataLayoutError(f"revealed attributes {revealed_attributes}: no correspondence names a clip of this "
                              "data with hidden attributes; expected the organisers' "
                              "attributes_XX_<train|test>_correspondence.csv files of this edition")


def _read_later(year, root, ground_truth, include_supplemental, revealed_attributes=None):
    root_path, rows = _scan(year, root, include_supplemental)
    _attributes_from_csv(rows)
    truth, where, explicit = _find_ground_truth_later(year, root_path, ground_truth)
    missing = [i for i, r in enumerate(rows) if r[7] == "test" and (r[8] == "unknown" or r[6] == "")]
    if truth is not None:
        hits = 0
        for i in missing:
            r = rows[i]
            fields = truth.get((r[4], r[1]))
            if fields is None:
                continue
            hits += 1
            domain = r[6] or fields.get("domain", "")
            label = r[8] if r[8] != "unknown" else fields.get("label", "unknown")
            attributes = r[9] or fields.get("attributes", "")
            rows[i] = r[:6] + (domain, r[7], label, attributes) + r[10:]
        if missing and hits == 0 and explicit:
            raise DataLayoutError(f"ground truth {where} names none of the {len(missing)} unlabelled test clips "
                                  f"under {root_path}; expected the DCASE {year} ground truth of this data")
        if hits < len(missing):
            warnings.warn(f"ground truth {where} leaves {len(missing) - hits} of {len(missing)} unlabelled test "
                          "clips without a label ('unknown')", stacklevel=3)
    if revealed_attributes is not None:
        _reveal(rows, truth, revealed_attributes)
    rows.sort(key=lambda r: (r[3], r[4], r[5], r[7], r[6], r[1]))
    return rows


def _find_ground_truth(year, root_path, ground_truth):
    """Return (labels dict or None, where, explicit)."""
    if ground_truth is not None:
        gt = os.path.abspath(os.path.expanduser(os.fspath(ground_truth)))
        if not os.path.exists(gt):
            what = "eval_data_list.csv" if year == 2020 else "a folder of ground_truth_*_test.csv files"
            raise DataLayoutError(f"ground truth {gt} does not exist; expected {what}")
        if year == 2020:
            if os.path.isdir(gt):
                gt = os.path.join(gt, "eval_data_list.csv")
                if not os.path.isfile(gt):
                    raise DataLayoutError(f"ground truth folder holds no eval_data_list.csv: {gt}; expected the "
                                          "path of the organisers' eval_data_list.csv")
            return read_eval_data_list(gt), gt, True
        labels = read_ground_truth_2021(gt)
        if not labels:
            raise DataLayoutError(f"ground truth {gt} holds no ground_truth_<type>_section_XX_<domain>_test.csv "
                                  "file; expected the organisers' DCASE 2021 ground-truth files")
        return labels, gt, True
    if year == 2020:
        for cand in (os.path.join(root_path, "eval_data_list.csv"),
                     os.path.join(root_path, "eval_data", "eval_data_list.csv")):
            if os.path.isfile(cand):
                return read_eval_data_list(cand), cand, False
        return None, None, False
    for cand in (os.path.join(root_path, "ground_truth"), os.path.join(root_path, "ground_truth_data"),
                 root_path):
        if os.path.isdir(cand):
            labels = read_ground_truth_2021(cand)
            if labels:
                return labels, cand, False
    return None, None, False


def _table(rows):
    columns = list(zip(*rows)) if rows else [[] for _ in COLUMNS]
    table = pd.DataFrame({c: list(v) for c, v in zip(COLUMNS, columns)})
    table["year"] = table["year"].astype("int64")
    return table


def _read(year, root, ground_truth, include_supplemental=False, revealed_attributes=None):
    if year in LATER_YEARS:
        return _table(_read_later(year, root, ground_truth, include_supplemental, revealed_attributes))
    if revealed_attributes is not None:
        raise DataLayoutError(f"revealed attributes are a DCASE 2024/2025 release; DCASE {year} hides none")
    root_path, rows = _scan(year, root)
    rows.sort(key=lambda r: (r[3], r[4], r[5], r[7], r[6], r[1]))
    labels, where, explicit = _find_ground_truth(year, root_path, ground_truth)
    if labels is not None:
        unlabelled = [i for i, r in enumerate(rows) if r[8] == "unknown"]
        hits = 0
        for i in unlabelled:
            r = rows[i]
            lab = labels.get((r[4], r[1]))
            if lab is not None:
                rows[i] = r[:8] + (lab,) + r[9:]
                hits += 1
        if unlabelled and hits == 0 and explicit:
            raise DataLayoutError(f"ground truth {where} labels none of the {len(unlabelled)} unlabelled test "
                                  f"clips under {root_path}; expected the DCASE {year} ground truth of this data")
        if hits < len(unlabelled):
            warnings.warn(f"ground truth {where} leaves {len(unlabelled) - hits} of {len(unlabelled)} unlabelled "
                          "test clips without a label ('unknown')", stacklevel=3)
    return _table(rows)


def read_dcase2020(root, ground_truth=None) -> pd.DataFrame:
    """Read a DCASE 2020 task 2 data root into the clip table (see the module docstring).

    Parameters
    ----------
    root : path
        Folder holding ``dev_data/`` and/or ``eval_data/``.
    ground_truth : path, optional
        The organisers' ``eval_data_list.csv`` (or a folder holding it). When None it is looked for at
        ``<root>/eval_data_list.csv`` and ``<root>/eval_data/eval_data_list.csv``; without it the
        unlabelled eval test clips get the label ``"unknown"``.

    Raises
    ------
    DataLayoutError
        For every departure from the layout listed in the module docstring.
    """
    return _read(2020, root, ground_truth)


def read_dcase2021(root, ground_truth=None) -> pd.DataFrame:
    """Read a DCASE 2021 task 2 data root into the clip table (see the module docstring).

    Parameters
    ----------
    root : path
        Folder holding ``dev_data/`` and/or ``eval_data/``.
    ground_truth : path, optional
        A folder of ``ground_truth_<type>_section_XX_<source|target>_test.csv`` files (or one such file).
        When None they are looked for in ``<root>/ground_truth/``, ``<root>/ground_truth_data/`` and
        ``<root>``.
    """
    return _read(2021, root, ground_truth)


def read_dataset(year, root, ground_truth=None, include_supplemental=False, revealed_attributes=None) -> pd.DataFrame:
    """Read a DCASE task 2 data root of the given ``year`` (2020-2025) into the clip table.

    ``year=None`` detects the edition (:func:`detect_year`). ``include_supplemental`` adds the 2025
    supplementary clips (``split = "supplemental"``; no method uses them). ``revealed_attributes``: a folder
    of the organisers' released ``attributes_XX_{train,test}_correspondence.csv`` files
    (:func:`read_revealed_attributes`); the clips they name get their real attributes instead of
    ``noAttribute`` (so does an evaluation test clip whose 2024 ``ground_truth_attributes`` row has a third
    column). Default None: the attributes stay hidden, as in the challenge.
    """
    if year is None:
        year = detect_year(root)
    try:
        year = int(year)
    except (TypeError, ValueError):
        year = None
    if year == 2020:
        return read_dcase2020(root, ground_truth)
    if year == 2021:
        return read_dcase2021(root, ground_truth)
    if year in LATER_YEARS:
        return _read(year, root, ground_truth, include_supplemental, revealed_attributes)
    if revealed_attributes is not None:
        raise DataLayoutError(f"revealed attributes are a DCASE 2024/2025 release; DCASE {year} hides none")
    raise DataLayoutError("unsupported DCASE year; expected one of " + ", ".join(map(str, YEARS)))


def _names_below(root_path):
    """``{(part, type): (split folder names, a few .wav names per split)}`` of a data root, cheaply."""
    out = {}
    for part, folder in _PARTS:
        part_path = os.path.join(root_path, folder)
        if not os.path.isdir(part_path):
            continue
        if os.path.isdir(os.path.join(part_path, "raw")):
            part_path = os.path.join(part_path, "raw")
        with os.scandir(part_path) as it:
            types = sorted((e for e in it if e.is_dir() and not _is_hidden(e.name)), key=lambda e: e.name)
        for type_entry in types:
            with os.scandir(type_entry.path) as it:
                subs = sorted((e for e in it if e.is_dir() and not _is_hidden(e.name)), key=lambda e: e.name)
            names = {}
            for sub in subs:
                with os.scandir(sub.path) as it:
                    names[sub.name] = [e.name for e in it if e.name.lower().endswith(".wav")
                                       and not _is_hidden(e.name)]
            out[(part, type_entry.name)] = names
    return out


def detect_year(root) -> int:
    """The DCASE edition of a data root, from its folders and file names.

    ``source_test``/``target_test`` folders: 2021; ``id_XX`` names: 2020; otherwise a later edition: sections
    other than ``00`` mean 2022; the evaluation machine types tell 2023, 2024 and 2025 apart, and a
    development set alone is told by the types whose names say ``noAttribute`` (none: 2023; gearbox: 2024;
    bearing: 2025) or a ``supplemental`` folder (2025). A root that fits no edition, or several, is an error
    asking for ``--year``.
    """
    root_path = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.isdir(root_path):
        raise DataLayoutError(f"data root {root_path} does not exist or is not a folder; expected a folder holding "
                              "dev_data/ and/or eval_data/")
    found = _names_below(root_path)
    if not found:
        raise DataLayoutError(f"data root {root_path} holds no dev_data/<type>/ or eval_data/<type>/ folder; "
                              "expected a DCASE task 2 data root")
    subs = set().union(*(set(v) for v in found.values()))
    names = [n for v in found.values() for ns in v.values() for n in ns]
    if subs & {"source_test", "target_test"}:
        return 2021
    if any(_RE_2020.fullmatch(n) for n in names):
        return 2020
    sections = {m.group(1) for n in names for m in [re.match(r"section_(\d+)_", n)] if m}
    if not sections:
        raise DataLayoutError(f"data root {root_path}: no DCASE recording names found; pass --year")
    if sections - {"00"}:
        # 2021 in one test/ folder has no attributes in its test names and labelled/domain eval names
        later = any(_RE_LATER_EVAL.fullmatch(n) for n in names) or any(
            (m := _RE_2021.fullmatch(n)) and m.group(3) == "test" and m.group(6) for n in names)
        return 2022 if later or any(t == "bearing" for _, t in found) else 2021
    eval_types = {t for (p, t) in found if p == "eval"}
    hits = [y for y in (2023, 2024, 2025) if eval_types & set(LATER_TYPES[y]["eval"])]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise DataLayoutError(f"data root {root_path}: evaluation machine types of several editions "
                              f"({', '.join(map(str, hits))}); pass --year")
    if "supplemental" in subs:
        return 2025
    hidden = {t for (p, t), v in found.items() if any("noAttribute" in n for ns in v.values() for n in ns)}
    marks = {2024: "gearbox", 2025: "bearing"}
    years = [y for y, t in marks.items() if t in hidden]
    if len(years) == 1:
        return years[0]
    if not hidden and {t for _, t in found} <= set(_DEV_LATER):
        return 2023
    raise DataLayoutError(f"data root {root_path}: cannot tell DCASE 2023, 2024 and 2025 apart from this "
                          "development set; pass --year")


def resolve_year(default: int, root=None, year=None) -> int:
    """The edition a command works with: ``year`` when given (``--year``), else the edition of ``root`` when it
    is a 2022-2025 root (:func:`detect_year`), else ``default`` (the script's own year: 2020 or 2021 data are
    read with that year's grammar, and its errors say what is wrong)."""
    if year is not None:
        year = int(year)
        if year not in YEARS:
            raise DataLayoutError(f"--year {year}: expected one of {', '.join(map(str, YEARS))}")
        return year
    if root is None:
        return int(default)
    try:
        detected = detect_year(root)
    except DataLayoutError:
        return int(default)
    return detected if detected in LATER_YEARS else int(default)
