"""DCASE 2020 and 2021 task 2 folder and file-name grammar -> the clip table.

The clip table is a :class:`pandas.DataFrame` with one row per recording and the columns of
:data:`COLUMNS` (all ``str`` except ``year``):

``path``        absolute path of the recording
``file``        its base name
``year``        2020 or 2021 (int)
``part``        ``"dev"`` (from ``dev_data/``) or ``"eval"`` (from ``eval_data/``)
``machine_type`` the type folder name (``fan``, ``ToyCar``, ...)
``unit``        ``"id_XX"`` (2020) or ``"section_XX"`` (2021), digits exactly as in the file name
``domain``      ``""`` (2020) or ``"source"`` / ``"target"`` (2021)
``split``       ``"train"`` or ``"test"``
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

Ground truth of the evaluation sets
-----------------------------------
- 2020: ``eval_data_list.csv`` from the organisers: a line holding only a machine type opens a block, then
  rows ``id_XX_NNNNNNNN.wav,<original name>,<0|1>`` (1 = anomaly). Searched, when not given, at
  ``<root>/eval_data_list.csv`` then ``<root>/eval_data/eval_data_list.csv``.
- 2021: files ``ground_truth_<type>_section_XX_<source|target>_test.csv`` with rows ``file,<0|1>``. Searched,
  when not given, in ``<root>/ground_truth/``, ``<root>/ground_truth_data/`` (the organisers' evaluator
  repository) and ``<root>`` itself (not inside ``eval_data/``: every folder there is a machine type). An
  explicit ``ground_truth`` may be the folder or a single such file.
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
    "MACHINE_TYPES",
    "OFFICIAL_UNITS",
    "parse_name_2020",
    "parse_name_2021",
    "read_dcase2020",
    "read_dcase2021",
    "read_dataset",
    "read_eval_data_list",
    "read_ground_truth_2021",
]

COLUMNS = ["path", "file", "year", "part", "machine_type", "unit", "domain", "split", "label",
           "attributes", "index"]

#: Official machine types per year (other type folder names are accepted too).
MACHINE_TYPES = {
    2020: ("ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"),
    2021: ("fan", "gearbox", "pump", "slider", "valve", "ToyCar", "ToyTrain"),
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
}

_PARTS = (("dev", "dev_data"), ("eval", "eval_data"))
_SPLIT_FOLDERS = {2020: ("train", "test"), 2021: ("train", "source_test", "target_test", "test")}
# extensions of audio containers other than WAV: such a file is a recording in the wrong format -> error
_OTHER_AUDIO = frozenset({".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".m4a", ".aac",
                          ".wma", ".au", ".snd", ".caf", ".w64", ".rf64", ".sph", ".nist", ".raw", ".pcm"})

_WAV = r"\.[wW][aA][vV]"
_RE_2020 = re.compile(r"(?:(normal|anomaly)_)?id_(\d+)_(\d+)" + _WAV)
_RE_2021 = re.compile(r"section_(\d+)_(source|target)_(train|test)_(?:(normal|anomaly)_)?(\d+)(?:_(.+))?"
                      + _WAV)
_RE_GT_2021 = re.compile(r"ground_truth_(.+)_section_(\d+)_(source|target)_test\.csv")

_EXPECTED_2020 = ("train 'normal_id_XX_NNNNNNNN.wav'; test '{normal,anomaly}_id_XX_NNNNNNNN.wav' "
                  "or unlabelled 'id_XX_NNNNNNNN.wav'")
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


def _scan(year, root):
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
    parts = [(part, os.path.join(root_path, folder)) for part, folder in _PARTS
             if os.path.isdir(os.path.join(root_path, folder))]
    if not parts:
        with os.scandir(root_path) as it:
            names = sorted(e.name for e in it if not _is_hidden(e.name))
        hint = ""
        if set(names) & set(_SPLIT_FOLDERS[2020] + _SPLIT_FOLDERS[2021]):
            hint = " (it looks like a machine type folder: pass the folder two levels up)"
        elif set(names) & (set(MACHINE_TYPES[2020]) | set(MACHINE_TYPES[2021])):
            hint = " (it looks like a dev_data or eval_data folder itself: pass its parent)"
        raise DataLayoutError(f"data root {root_path} holds neither dev_data/ nor eval_data/{hint}; "
                              f"expected {layout_hint}")

    split_folders = _SPLIT_FOLDERS[year]
    parse = parse_name_2020 if year == 2020 else parse_name_2021
    expected_names = _EXPECTED_2020 if year == 2020 else _EXPECTED_2021
    if year == 2020:
        expected_splits = "train/ and test/"
    else:
        expected_splits = "train/ and source_test/ + target_test/ (or one test/)"
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
            other_year = 2021 if year == 2020 else 2020
            for name in unknown:
                hint = ""
                if name in _SPLIT_FOLDERS[other_year]:
                    hint = f" (a DCASE {other_year} folder name: is this DCASE {other_year} data?)"
                problems.add("{n} unexpected folder(s): {paths}; expected only " + expected_splits + hint,
                             sub[name])
            if year == 2020:
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
                if split_folder not in sub:
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


def _read(year, root, ground_truth):
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
    columns = list(zip(*rows)) if rows else [[] for _ in COLUMNS]
    table = pd.DataFrame({c: list(v) for c, v in zip(COLUMNS, columns)})
    table["year"] = table["year"].astype("int64")
    return table


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


def read_dataset(year, root, ground_truth=None) -> pd.DataFrame:
    """Read a DCASE task 2 data root of the given ``year`` (2020 or 2021) into the clip table."""
    try:
        year = int(year)
    except (TypeError, ValueError):
        year = None
    if year == 2020:
        return read_dcase2020(root, ground_truth)
    if year == 2021:
        return read_dcase2021(root, ground_truth)
    raise DataLayoutError("unsupported DCASE year; expected 2020 or 2021")
