"""DCASE task 2 submission files: anomaly scores and decisions, written and read exactly.

File names and formats (DCASE 2020 and 2021 task 2 submission rules; REFERENCE.md section 1):

- 2020: ``anomaly_score_<machine_type>_id_XX.csv`` per machine ID;
- 2021: ``anomaly_score_<machine_type>_section_XX_<source|target>_test.csv`` and
  ``decision_result_<machine_type>_section_XX_<source|target>_test.csv`` per section and domain;
- 2022-2025: ``anomaly_score_<machine_type>_section_XX_test.csv`` and
  ``decision_result_<machine_type>_section_XX_test.csv`` per section, both domains in one file (the names as in
  the test folder: ``section_XX_NNNN.wav`` for the evaluation clips);
- rows ``file,score`` (``file,0|1`` for decisions), no header, the file's base name, test clips only;
  higher score = more anomalous.

Each system's files live in their own folder (``scores/<system>/``). Files are written atomically
(temporary name, then ``os.replace``) and an existing file is never overwritten: the whole write is refused
before anything is written. Scores are written with Python's shortest round-trip ``repr`` so that reading
them back gives the identical float64 values.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.atomic_io import atomic_write_text

__all__ = [
    "score_file_name",
    "decision_file_name",
    "write_scores",
    "write_decisions",
    "read_scores",
    "attach_scores",
    "evaluate_system",
]

_KEYS = ["machine_type", "unit", "domain", "file"]
_NAME_PATTERNS = {
    (2020, "anomaly_score"): re.compile(r"^anomaly_score_(?P<machine_type>.+)_(?P<unit>id_\d{2})\.csv$"),
    (2021, "anomaly_score"): re.compile(
        r"^anomaly_score_(?P<machine_type>.+)_(?P<unit>section_\d{2})_(?P<domain>source|target)_test\.csv$"),
    (2021, "decision_result"): re.compile(
        r"^decision_result_(?P<machine_type>.+)_(?P<unit>section_\d{2})_(?P<domain>source|target)_test\.csv$"),
    ("later", "anomaly_score"): re.compile(r"^anomaly_score_(?P<machine_type>.+)_(?P<unit>section_\d{2})_test\.csv$"),
    ("later", "decision_result"): re.compile(
        r"^decision_result_(?P<machine_type>.+)_(?P<unit>section_\d{2})_test\.csv$"),
}
#: Editions whose submission holds one file per section (both domains).
LATER_YEARS = (2022, 2023, 2024, 2025)


def _check_year(year) -> int:
    if int(year) not in (2020, 2021) + LATER_YEARS:
        raise ASDError(f"year={year}: must be one of 2020-2025")
    return int(year)


def _grammar(year: int):
    return "later" if year in LATER_YEARS else year


def score_file_name(machine_type: str, unit: str, domain: str, year: int) -> str:
    """``anomaly_score_<type>_id_XX.csv`` (2020) or ``anomaly_score_<type>_section_XX_<domain>_test.csv``."""
    if _check_year(year) == 2020:
        if not re.fullmatch(r"id_\d{2}", str(unit)):
            raise ASDError(f"unit '{unit}': a DCASE 2020 unit is 'id_XX'")
        return f"anomaly_score_{machine_type}_{unit}.csv"
    if int(year) in LATER_YEARS:
        if not re.fullmatch(r"section_\d{2}", str(unit)):
            raise ASDError(f"unit '{unit}': a DCASE {year} unit is 'section_XX'")
        return f"anomaly_score_{machine_type}_{unit}_test.csv"
    if not re.fullmatch(r"section_\d{2}", str(unit)) or domain not in ("source", "target"):
        raise ASDError(f"unit '{unit}', domain '{domain}': a DCASE 2021 unit is 'section_XX' with domain "
                       "'source' or 'target'")
    return f"anomaly_score_{machine_type}_{unit}_{domain}_test.csv"


def decision_file_name(machine_type: str, unit: str, domain: str, year: int = 2021) -> str:
    """``decision_result_<type>_section_XX_<domain>_test.csv`` (2021) or ``..._section_XX_test.csv`` (2022-2025)."""
    if int(year) == 2020:
        raise ASDError("decision files exist only from DCASE 2021 on")
    return "decision_result_" + score_file_name(machine_type, unit, domain, year)[len("anomaly_score_"):]


def _year_of(table: pd.DataFrame) -> int:
    if "year" in table.columns and len(table):
        years = sorted(set(int(y) for y in table["year"].unique()))
        if len(years) != 1:
            raise ASDError(f"the clip table mixes years {years}; write one year at a time")
        return _check_year(years[0])
    units = table["unit"].astype(str)
    if units.str.fullmatch(r"id_\d{2}").all():
        return 2020
    if units.str.fullmatch(r"section_\d{2}").all():
        return 2021
    raise ASDError("cannot tell the DCASE year of the clip table (no 'year' column, mixed units)")


def _values_for_test_clips(table: pd.DataFrame, values, what: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Test rows of ``table`` and their values; ``values`` is a column name or one value per table row."""
    missing = [c for c in ("machine_type", "unit", "split", "file") if c not in table.columns]
    if missing:
        raise ASDError(f"the clip table lacks columns {missing}; build it with asdcore.layouts")
    if isinstance(values, str):
        if values not in table.columns:
            raise ASDError(f"the clip table has no column '{values}' holding the {what}")
        all_values = table[values].to_numpy(dtype=float)
    else:
        all_values = np.asarray(values, dtype=float).ravel()
        if all_values.size != len(table):
            raise ASDError(f"{all_values.size} {what} for {len(table)} clip-table rows; give one per row "
                           "(train rows may hold NaN)")
    is_test = (table["split"] == "test").to_numpy()
    test = table[is_test].copy()
    if "domain" not in test.columns:
        test["domain"] = ""
    test["domain"] = test["domain"].fillna("").astype(str)
    if test.empty:
        raise ASDError(f"the clip table has no test clips; only test clips get {what}")
    return test, all_values[is_test]


def _group_files(test: pd.DataFrame, values: np.ndarray, name_of, what: str, formatter,
                 per_domain: bool = True) -> dict[str, str]:
    bad = ~np.isfinite(values)
    if bad.any():
        first = test["file"].to_numpy()[bad][0]
        raise ASDError(f"{int(bad.sum())} test clips have NaN or infinite {what} (first: {first}); give every test "
                       "clip a value, or pass only the clips you scored")
    test = test.assign(_value=values)
    if not per_domain:  # 2022-2025: one file per section, both domains
        test = test.assign(domain="")
    texts = {}
    for (machine_type, unit, domain), rows in test.groupby(["machine_type", "unit", "domain"], sort=True):
        name = name_of(machine_type, unit, domain)
        if rows["file"].duplicated().any():
            dup = rows.loc[rows["file"].duplicated(), "file"].iloc[0]
            raise ASDError(f"{name}: file '{dup}' appears twice among the test clips (dev and eval mixed with "
                           "the same unit?); write one part at a time")
        rows = rows.sort_values("file", kind="stable")
        lines = [f"{f},{formatter(v)}" for f, v in zip(rows["file"], rows["_value"])]
        texts[name] = "\n".join(lines) + "\n"
    return texts


def _write_all(system_dir, texts: dict[str, str]) -> list[Path]:
    system_dir = Path(system_dir)
    paths = {system_dir / name: text for name, text in texts.items()}
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ASDError(f"{existing[0]}: exists already ({len(existing)} of {len(paths)} files); refusing to "
                       "overwrite an earlier submission (use a new system folder)")
    system_dir.mkdir(parents=True, exist_ok=True)
    return [atomic_write_text(path, text) for path, text in paths.items()]


def write_scores(table: pd.DataFrame, scores, system_dir, year: int) -> list[Path]:
    """Write one ``anomaly_score_*.csv`` per unit (2021: per section and domain) into ``system_dir``.

    Parameters
    ----------
    table : DataFrame
        Clip table; only rows with ``split == "test"`` are written (train rows are ignored).
    scores : str or array-like
        Name of a score column of ``table``, or one score per table row (higher = more anomalous).
    system_dir : path
        The system's folder (``scores/<system>/``); created if needed.
    year : int
        2020 or 2021 (file-name grammar).

    Returns
    -------
    list of Path
        The written files, sorted by name.

    Raises
    ------
    ASDError
        A test clip without a finite score, or any target file that exists already (nothing is written).
    """
    year = _check_year(year)
    test, values = _values_for_test_clips(table, scores, "scores")
    texts = _group_files(test, values, lambda t, u, d: score_file_name(t, u, d, year), "scores",
                         lambda v: repr(float(v)), per_domain=year not in LATER_YEARS)
    return _write_all(system_dir, texts)


def write_decisions(table: pd.DataFrame, decisions, system_dir) -> list[Path]:
    """Write one ``decision_result_*.csv`` per section and domain (DCASE 2021), rows ``file,0|1``.

    ``decisions`` is a column name of ``table`` or one value per row (bool or 0/1; 1 = anomalous).
    """
    year = _year_of(table)
    if year == 2020:
        raise ASDError("decision files exist only from DCASE 2021 on (decision_result_<type>_section_XX_..._test.csv)")
    test, values = _values_for_test_clips(table, decisions, "decisions")
    finite = values[np.isfinite(values)]
    if not np.all(np.isin(finite, (0.0, 1.0))):
        raise ASDError("decisions must be 0 (normal) or 1 (anomalous)")
    texts = _group_files(test, values, lambda t, u, d: decision_file_name(t, u, d, year), "decisions",
                         lambda v: str(int(v)), per_domain=year not in LATER_YEARS)
    return _write_all(system_dir, texts)


def _read_rows(path: Path, what: str) -> list[tuple[str, float]]:
    with open(path, newline="", encoding="utf-8") as handle:
        raw = [row for row in csv.reader(handle) if row and any(field.strip() for field in row)]
    if not raw:
        raise ASDError(f"{path}: empty; a submission file lists every test clip of its unit")
    out = []
    for number, row in enumerate(raw, start=1):
        if len(row) != 2:
            raise ASDError(f"{path}: line {number} has {len(row)} fields; expected 'file,{what}' without header")
        name, text = row[0].strip(), row[1].strip()
        try:
            value = float(text)
        except ValueError:
            hint = " (a header line? DCASE files have none)" if number == 1 else ""
            raise ASDError(f"{path}: line {number}: '{text}' is not a number{hint}") from None
        if not math.isfinite(value):
            raise ASDError(f"{path}: line {number}: {what} '{text}' is not finite")
        out.append((name, value))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ASDError(f"{path}: file '{dup}' is listed twice")
    return out


def _read_kind(system_dir: Path, year: int, kind: str, column: str) -> pd.DataFrame:
    pattern = _NAME_PATTERNS[(_grammar(year), kind)]
    frames = []
    for path in sorted(system_dir.iterdir()):
        match = pattern.match(path.name)
        if not match or not path.is_file():
            continue
        rows = _read_rows(path, "score" if column == "score" else "0|1")
        frame = pd.DataFrame(rows, columns=["file", column])
        frame["machine_type"] = match["machine_type"]
        frame["unit"] = match["unit"]
        frame["domain"] = match.groupdict().get("domain") or ""
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=_KEYS + [column])
    return pd.concat(frames, ignore_index=True)


def read_scores(system_dir, year: int) -> pd.DataFrame:
    """Read a system folder's ``anomaly_score_*.csv`` (and ``decision_result_*.csv``) files.

    Files whose names do not follow the year's grammar are ignored (e.g. a ``results.csv`` beside them).

    Returns
    -------
    DataFrame
        ``file, machine_type, unit, domain, score`` (+ ``decision`` as int when decision files exist), sorted
        by (machine_type, unit, domain, file); ``domain`` is "" in 2020.

    Raises
    ------
    ASDError
        No score files, a malformed file (header, wrong field count, non-numeric or duplicated rows), or
        decision files that do not cover exactly the same clips as the score files.
    """
    year = _check_year(year)
    system_dir = Path(system_dir)
    if not system_dir.is_dir():
        raise ASDError(f"{system_dir}: not a folder; give the folder holding the anomaly_score_*.csv files")
    scores = _read_kind(system_dir, year, "anomaly_score", "score")
    if scores.empty:
        expected = {2020: "anomaly_score_<type>_id_XX.csv",
                    2021: "anomaly_score_<type>_section_XX_<source|target>_test.csv"}.get(
            year, "anomaly_score_<type>_section_XX_test.csv")
        raise ASDError(f"{system_dir}: no score files named {expected} (DCASE {year})")
    columns = ["file", "machine_type", "unit", "domain", "score"]
    if year != 2020:
        decisions = _read_kind(system_dir, year, "decision_result", "decision")
        if not decisions.empty:
            bad = ~decisions["decision"].isin([0.0, 1.0])
            if bad.any():
                first = decisions[bad].iloc[0]
                raise ASDError(f"{system_dir / decision_file_name(first['machine_type'], first['unit'], first['domain'], year)}"
                               f": decision for '{first['file']}' is {first['decision']}; must be 0 or 1")
            merged = scores.merge(decisions, on=_KEYS, how="outer", indicator=True)
            odd = merged[merged["_merge"] != "both"]
            if len(odd):
                first = odd.iloc[0]
                side = "score" if first["_merge"] == "right_only" else "decision"
                raise ASDError(f"{system_dir}: {len(odd)} clips have a {'decision' if side == 'score' else 'score'} "
                               f"but no {side} (first: {first['machine_type']} {first['unit']} {first['domain']} "
                               f"{first['file']}); write both files for every section and domain")
            scores = merged.drop(columns="_merge")
            scores["decision"] = scores["decision"].astype(int)
            columns.append("decision")
    scores["score"] = scores["score"].astype(float)
    return scores[columns].sort_values(["machine_type", "unit", "domain", "file"], kind="stable").reset_index(drop=True)


def attach_scores(table: pd.DataFrame, scores_df: pd.DataFrame) -> pd.DataFrame:
    """Join read scores onto the clip table's test clips by (machine_type, unit, domain, file).

    Every scored file must be a test clip of the table, and every test clip of a scored unit must have a
    score; units without any score file keep NaN (e.g. the eval part when only dev was scored). Train rows
    keep NaN (train and test file names repeat in DCASE 2020).

    Returns
    -------
    DataFrame
        A copy of ``table`` with ``score`` (and ``decision`` when ``scores_df`` has it) columns.
    """
    missing = [c for c in _KEYS + ["split"] if c not in table.columns and c != "domain"]
    if missing:
        raise ASDError(f"the clip table lacks columns {missing}; build it with asdcore.layouts")
    value_columns = [c for c in ("score", "decision") if c in scores_df.columns]
    if "score" not in value_columns:
        raise ASDError("the scores frame has no 'score' column; read it with asdcore.submission.read_scores")
    out = table.copy()
    if "domain" not in out.columns:
        out["domain"] = ""
    keys = out[_KEYS].astype(str).assign(domain=out["domain"].fillna("").astype(str)).reset_index(drop=True)
    if "year" in out.columns and len(out) and int(out["year"].iloc[0]) in LATER_YEARS:
        keys["domain"] = ""  # 2022-2025: a score file covers a whole section, both domains
    keys["_row"] = np.arange(len(out))
    scores_df = scores_df.copy()
    scores_df["domain"] = scores_df["domain"].fillna("").astype(str)
    is_test = (out["split"] == "test").to_numpy()
    test_keys = keys[is_test]
    dup = test_keys.duplicated(_KEYS)
    if dup.any():
        first = test_keys[dup].iloc[0]
        raise ASDError(f"test clip {first['machine_type']} {first['unit']} {first['domain']} {first['file']} "
                       "appears twice in the clip table (dev and eval with the same unit?); evaluate one part at a time")
    merged = scores_df[_KEYS + value_columns].merge(test_keys, on=_KEYS, how="left", indicator=True)
    extra = merged[merged["_merge"] == "left_only"]
    if len(extra):
        first = extra.iloc[0]
        raise ASDError(f"{len(extra)} scored files are not test clips of the data (first: {first['machine_type']} "
                       f"{first['unit']} {first['domain']} {first['file']}); check --data-root and the score folder")
    scored_units = set(map(tuple, scores_df[["machine_type", "unit", "domain"]].drop_duplicates().to_numpy()))
    in_unit = np.array([tuple(r) in scored_units for r in test_keys[["machine_type", "unit", "domain"]].to_numpy()],
                       dtype=bool)
    in_scored = test_keys[in_unit]
    lacking = in_scored[~in_scored["_row"].isin(merged["_row"])]
    if len(lacking):
        first = lacking.iloc[0]
        raise ASDError(f"{len(lacking)} test clips of scored units have no score (first: {first['machine_type']} "
                       f"{first['unit']} {first['domain']} {first['file']}); the score files must list every test clip")
    for column in value_columns:
        values = np.full(len(out), np.nan)
        values[merged["_row"].to_numpy(dtype=int)] = merged[column].to_numpy(dtype=float)
        out[column] = values
    return out


def evaluate_system(system_dir, table: pd.DataFrame, year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a system folder, join it onto the clip table and evaluate it as the organisers do.

    Each part (dev, eval) present among the scored clips is evaluated and summarised separately.

    Returns
    -------
    (per_unit, summary) : tuple of DataFrame
        :func:`asdcore.metrics.evaluate_clips` (with precision/recall/F1 when decision files exist) and
        :func:`asdcore.metrics.summarize`, each with a leading ``part`` column when the table has one.
    """
    from asdcore.metrics import evaluate_clips, summarize

    scores = read_scores(system_dir, year)
    joined = attach_scores(table, scores)
    decision_column = "decision" if "decision" in scores.columns else None
    if "part" not in joined.columns:
        per_unit = evaluate_clips(joined, "score", decision_column)
        return per_unit, summarize(per_unit, year)
    scored = joined[joined["score"].notna()]
    per_units, summaries = [], []
    for part, part_rows in scored.groupby("part", sort=True):
        per_unit = evaluate_clips(part_rows, "score", decision_column)
        summary = summarize(per_unit, year)
        per_unit.insert(0, "part", part)
        summary.insert(0, "part", part)
        per_units.append(per_unit)
        summaries.append(summary)
    return pd.concat(per_units, ignore_index=True), pd.concat(summaries, ignore_index=True)
