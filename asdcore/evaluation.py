"""The ``evaluate`` command of both run scripts: official scores of DCASE submission files.

``SCORES_DIR`` is either one system's folder (holding ``anomaly_score_*.csv``) or a folder of such
folders (the ``scores/`` folder of a run); every system found is evaluated against the labels of the
data set under ``--data-root`` (eval labels from ``--ground-truth`` or the organisers' files in the root).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from asdcore.errors import ASDError


def find_systems(scores_dir) -> dict[str, Path]:
    """System name -> folder: ``scores_dir`` itself when it holds score files, else its sub-folders that do."""
    scores_dir = Path(scores_dir)
    if not scores_dir.is_dir():
        raise ASDError(f"{scores_dir}: no such folder (give a folder of anomaly_score_*.csv files or of systems)")
    if any(scores_dir.glob("anomaly_score_*.csv")):
        return {scores_dir.name: scores_dir}
    systems = {p.name: p for p in sorted(scores_dir.iterdir()) if p.is_dir() and any(p.glob("anomaly_score_*.csv"))}
    if not systems:
        raise ASDError(f"{scores_dir}: no anomaly_score_*.csv files in it or in its sub-folders")
    return systems


def add_arguments(parser, year):
    parser.add_argument("scores_dir", type=Path, metavar="SCORES_DIR",
                        help="a system folder of DCASE submission files, or a folder of system folders")
    parser.add_argument("--data-root", type=Path, required=True, help="DCASE data root (for the labels)")
    parser.add_argument("--ground-truth", type=Path, default=None,
                        help="eval labels: 2020 eval_data_list.csv, 2021 folder of ground_truth_*.csv files, "
                             "2022-2025 the evaluator's folder (ground_truth_data/, ground_truth_domain/) or "
                             "eval_data_list_<year>.csv")
    parser.add_argument("--year", type=int, default=None, dest="data_year", choices=(2020, 2021, 2022, 2023, 2024, 2025),
                        help="the DCASE edition whose layout and official scores apply (default: detected from "
                             "--data-root; 2022-2025 roots are recognised, otherwise the script's year)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="root of the run folders (default: runs)")


def run(args) -> int:
    from asdcore.experiment import RunFolder
    from asdcore.layouts import read_dataset, resolve_year
    from asdcore.submission import evaluate_system

    systems = find_systems(args.scores_dir)
    year = resolve_year(args.year, args.data_root, getattr(args, "data_year", None))
    table = read_dataset(year, args.data_root, ground_truth=args.ground_truth)
    print(f"DCASE {year} task 2 layout and official scores")
    per_units, summaries = [], []
    for name, folder in systems.items():
        per_unit, summary = evaluate_system(folder, table, year)
        per_units.append(per_unit.assign(system=name))
        summaries.append(summary.assign(system=name))
    per_unit = pd.concat(per_units, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    run_folder = RunFolder.create(args.out, year, "evaluate", log_to_console=False)
    results = pd.concat([per_unit.assign(row="unit"), summary.assign(row="summary")], ignore_index=True)
    results.insert(0, "rules", f"DCASE {year}")
    from asdcore.synthetic import is_synthetic

    results.insert(1, "data", "synthetic" if is_synthetic(args.data_root) else "real")  # as in a run's results.csv
    front = ["rules", "data", "row", "system"]
    results = results[front + [c for c in results.columns if c not in front]]
    run_folder.write_csv("results.csv", results)
    fmt = {c: (lambda v: f"{100 * v:.2f}") for c in ("auc", "pauc", "precision", "recall", "f1", "score",
                                                       "auc_ci_low", "auc_ci_high")}
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        for name in systems:
            print(f"== {name} (values in %)")
            print(per_unit[per_unit["system"] == name].drop(columns="system").to_string(index=False, formatters=fmt))
            print(summary[summary["system"] == name].drop(columns="system").to_string(index=False, formatters=fmt))
    print(f"results: {run_folder.path / 'results.csv'}")
    run_folder.close()
    return 0
