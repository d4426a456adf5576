"""Paper tables of the ``subcluster-adacos`` command (Wilkinghoff 2020, Tables II-V and Fig. 2/3): the
systems and row labels of each experiment, the :class:`~asdcore.tables.TableSpec` s over the published CSVs
and the markdown of comparison.md.

Keras-free; the driver is :mod:`subcluster_adacos.experiments`.
"""
from __future__ import annotations

import numpy as np

from asdcore.experiment import QUICK_BANNER
from subcluster_adacos.settings_2020 import TABLE_II_BACKENDS, ModelSpec, models_for


def _label(spec: ModelSpec) -> dict:
    return {"mixup": "yes" if spec.mixup else "no", "modified_adacos": "yes" if spec.loss != "adacos" else "no"}


def run_experiment(name, nets, representation_scores: dict):
    """Systems (name -> scores) and their paper-table row labels for one experiment.

    Returns ``(systems, labels, diverged, notes)``: ``diverged`` holds the row labels of the systems whose
    network diverged (reported as "diverges", never scored), ``notes`` lines for the comparison table.
    ``representation_scores`` holds the temporal "mean" (and "max") scores of Table V; "mean" is needed by
    the "representations" and "ensemble" experiments (the "combined" rule).
    """
    from subcluster_adacos.scoring import BACKENDS, combined_scores

    config = nets.config
    machine_types = nets.table["machine_type"].to_numpy()
    systems, labels, diverged, notes = {}, {}, [], []

    def add(key, scores, row_labels):
        if scores is None:
            diverged.append(row_labels)
        else:
            systems[key], labels[key] = scores, row_labels

    if name == "backends":
        spec = models_for("backends", config)[0]
        for backend in TABLE_II_BACKENDS:
            add(f"table2_{backend}", nets.backend(spec, backend), {"backend": BACKENDS[backend]})
    elif name == "mixup":
        for spec in models_for("mixup", config):
            add(f"table3_{spec.name}", nets.backend(spec, "gaussian_full"), _label(spec))
    elif name == "subclusters":
        for spec in models_for("subclusters", config):
            for label, components in (("Gaussian", 1), ("GMM", spec.n_subclusters)):
                add(f"table4_S{spec.n_subclusters:02d}_{label.lower()}", nets.backend(spec, "gmm", components),
                    {"n_subclusters": str(spec.n_subclusters), "backend": label})
    elif name == "representations":
        spec = models_for("representations", config)[0]
        learned = nets.backend(spec, "gmm")
        mean = representation_scores["mean"]
        combined = nets.combined(spec)  # the saved ScoringSystem's scores: learned, the temporal mean for ToyConveyor
        for key, scores in (("mean", mean), ("max", representation_scores["max"]), ("learned", learned),
                            ("combined", combined)):
            add(f"table5_{key}", scores, {"representation": key})
    elif name == "ensemble":
        # Fig. 2/3: every member is scored with the "combined" rule (the temporal mean for ToyConveyor),
        # as the public code does, and the members' scores are summed without normalisation.
        mean = representation_scores["mean"]
        members, left_out = [], []
        for spec in models_for("ensemble", config):
            learned = nets.backend(spec, "gmm")
            if learned is None:
                left_out.append(spec.n_subclusters)
                continue
            members.append(combined_scores(learned, mean, machine_types, config.combined_mean_types))
        add("ensemble", np.sum(members, axis=0) if members else None, {"system": "ensemble"})
        if left_out:
            nets.log.warning("ensemble: the networks with S in %s diverged and are left out of the sum", left_out)
            notes.append(f"ensemble: the networks with S in {left_out} diverged and are left out of the sum")
        largest = ModelSpec("subcluster_adacos", True, config.representation_subclusters)
        add("ensemble_single", nets.backend(largest, "gmm"), {"system": "proposed approach"})
    return systems, labels, diverged, notes


# --- comparison tables ----------------------------------------------------------------------------------

_ALL = {"statistic": "arithmetic mean", "machine_type": "all"}
_TABLES = {
    "backends": dict(published="wilkinghoff2020_table2", row_columns=("backend",), filters=_ALL,
                     title="Table II: back-ends (mean over IDs, %)"),
    "mixup": dict(published="wilkinghoff2020_table3", row_columns=("mixup", "modified_adacos"), filters=_ALL,
                  title="Table III: mixup and modified AdaCos, S = 1, Gaussian back-end (%)"),
    "subclusters": dict(published="wilkinghoff2020_table4", row_columns=("n_subclusters", "backend"),
                        filters=_ALL, title="Table IV: number of sub-clusters (%)"),
    "representations": dict(published="wilkinghoff2020_table5", row_columns=("representation",),
                            filters={"statistic": "arithmetic mean"},
                            title="Table V: representations per machine type (%)"),
    "ensemble": dict(published="wilkinghoff2020_ensemble", row_columns=("system",),
                     filters={"statistic": "arithmetic mean"},
                     title="Fig. 2/3: ensemble over the number of sub-clusters (evaluation set, %)"),
}


def table_spec(name, labels, diverged, run_types=()):
    """The :class:`~asdcore.tables.TableSpec` of one experiment: our systems in the paper's rows; the rows
    of diverged networks read "diverges" (for the machine types of the run, ``run_types``, and "all")."""
    from asdcore.tables import TableSpec

    wanted = {tuple(str(v) for v in row.values()) for row in diverged}
    types = {str(t) for t in run_types} | {"all"}

    def mark_diverged(wide):
        if not wanted:
            return wide
        columns = list(_TABLES[name]["row_columns"])
        hit = np.array([tuple(r) in wanted for r in wide[columns].astype(str).itertuples(index=False)], dtype=bool)
        hit &= wide["machine type"].astype(str).isin(types).to_numpy()
        ours = [c for c in wide.columns if c.endswith("(ours)")]
        wide[ours] = wide[ours].astype(object)
        wide.loc[hit, ours] = "diverges"
        return wide

    return TableSpec(**_TABLES[name], systems=labels, extra_columns=mark_diverged)


def comparison(name, summary, labels, diverged, notes, config, run_types=()):
    """The markdown section of one experiment and its frame: our numbers beside the paper's, in the paper's
    rows; the rows of diverged networks read "diverges"."""
    from asdcore.tables import render_markdown, tidy_results

    extra = []
    if name == "ensemble":
        extra.append(f"ensemble = the scores of the networks with S in {config.subclusters} summed, each scored "
                     f"with the Table V 'combined' rule (temporal-mean Gaussian for "
                     f"{', '.join(config.combined_mean_types)}, GMM on the embeddings otherwise), as in the "
                     f"public code; proposed approach = the single network with S = "
                     f"{config.representation_subclusters}, GMM on the embeddings for every type (the paper's "
                     "'learned' row of Table V)")
    if name == "mixup" or diverged:
        extra.append(f"diverges = training stopped because the adaptive scale exceeded {config.divergence_scale:g}"
                     " or became NaN/infinite, or the loss became non-finite (checked after every epoch)")
    seen = set(summary["machine_type"]) if "machine_type" in summary else set()
    return render_markdown(table_spec(name, labels, diverged, set(run_types) | seen), tidy_results(summary),
                           notes + extra)


def report(ctx, experiments, found, summary) -> list[str]:
    """The sections of comparison.md for the experiments run (``found``: experiment -> (row labels, diverged
    rows, notes) of :func:`run_experiment`); each table is also printed."""
    config = ctx.config
    notes = [ctx.source.description]
    if ctx.quick:
        notes.append(f"{QUICK_BANNER} ({ctx.why}): {config.epochs} epochs, S in {config.subclusters}")
    text = [f"experiments: {', '.join(experiments)}", ""]
    if summary.empty and not any(d for _, d, _ in found.values()):
        return text + ["No labelled test clips: submission files only."]
    for name in experiments:
        row_labels, diverged, extra = found[name]
        section, merged = comparison(name, summary, row_labels, diverged, notes + extra, config,
                                     run_types=sorted(set(ctx.table["machine_type"])))
        text.append(section)
        print(f"\n{_TABLES[name]['title']}")
        print(merged.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    return text
