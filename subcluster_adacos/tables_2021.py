"""Paper tables of the ``multi-distribution`` command (Wilkinghoff 2021, Tables 2-5): the systems' row labels,
the :class:`~asdcore.tables.TableSpec` s over ``asdcore/published/wilkinghoff2021_table{2,3,4,5}.csv`` with
their hooks (baseline columns, our F1), our rows in the published vocabulary and the markdown of comparison.md.

Keras-free; the driver is :mod:`subcluster_adacos.experiments_2021`.
"""
from __future__ import annotations

import pandas as pd

from asdcore.experiment import QUICK_BANNER


#: system names of the run folder -> row/column labels of the paper
DISTRIBUTION_SYSTEMS = {"distribution_section": "P(x|s,k)", "distribution_attribute": "P(x|a,k)",
                        "distribution_target": "P(x|X_target(s),k)", "proposed": "proposed ensemble"}
LOSS_SYSTEMS = {"loss_sections": "sections", "loss_sections_attributes": "sections and file endings",
                "proposed": "proposed ensemble"}
#: the domain a distribution is defined for in Table 3 (None: both)
DISTRIBUTION_DOMAIN = {"distribution_attribute": "source", "distribution_target": "target"}


# --- comparison tables ------------------------------------------------------------------------------------
# Each paper table is an asdcore.tables.TableSpec over asdcore/published/wilkinghoff2021_table<N>.csv: one row
# per printed row and machine type (section, domain), columns "<set> <METRIC> (ours)" / "(paper)". What a spec
# cannot express is a hook: the baselines' columns of Tables 2 and 5 and our F1 (Table 2) are extra columns.

#: the paper's baseline systems (Tables 2 and 5) -> the prefix of their extra columns
BASELINES = {"baseline autoencoder": "AE", "baseline MobileNetV2": "MobileNetV2"}


def _ours(frame, systems, part, metrics=("auc", "pauc"), **conditions):
    """Our rows of ``frame`` (summary or per_unit) in the published vocabulary
    (:func:`asdcore.tables.tidy_results`): ``systems``, set ``part``, ``metrics`` only, and ``column == value``
    (a tuple: any of them)."""
    from asdcore.tables import tidy_results

    if frame is None or frame.empty:
        return tidy_results(None)
    rows = frame[frame["system"].isin(list(systems)) & (frame["part"] == part)]
    for column, value in conditions.items():
        rows = rows[rows[column].isin(value if isinstance(value, tuple) else (value,))]
    return tidy_results(rows, metrics)


def _baseline_columns(published, keys, part, metrics):
    """``extra_columns`` hook: the paper's baselines beside the rendered rows, ``<AE|MobileNetV2> <set>
    <METRIC> (paper)``, inserted after the row labels (the paper prints them first)."""
    from asdcore.published import load_table

    names = {"auc": "AUC", "pauc": "pAUC", "score": "score"}

    def extra(wide):
        paper = load_table(published)
        position = len(keys)
        for system, short in BASELINES.items():
            rows = paper[(paper["system"] == system) & (paper["set"] == part)]
            for metric in metrics:
                values = rows[rows["metric"] == metric].set_index([k for k, _ in keys])["value"]
                index = pd.MultiIndex.from_frame(wide[[shown for _, shown in keys]].astype(str))
                wide.insert(position, f"{short} {part} {names[metric]} (paper)", values.reindex(index).to_numpy())
                position += 1
        return wide

    return extra


def table2_spec(types=()):
    """Table 2: AUC and pAUC per section and domain on the development set and their harmonic mean per
    machine type (section ``all``, domain ``all``), the proposed system; the baselines' columns and our F1 of
    the decisions (Sec. 2.6; the paper prints none) are extra columns."""
    from asdcore.tables import TableSpec

    baselines = _baseline_columns("wilkinghoff2021_table2", [("machine_type", "machine type"), ("unit", "unit"),
                                                             ("domain", "domain")], "dev", ("auc", "pauc"))

    def extra(wide):
        wide = baselines(wide.drop(columns=["dev F1 (paper)"]))
        return wide.rename(columns={"unit": "section"})

    # the paper's rows of its proposed system and ours, named "proposed"
    filters = {"system": ("proposed system", "proposed"), **({"machine_type": tuple(types)} if types else {})}
    return TableSpec("wilkinghoff2021_table2", "Table 2: AUC and pAUC (%) per section and domain, development set "
                     "(section all: harmonic mean per machine type; F1 of the decisions: ours only)",
                     systems={"proposed": {}}, filters=filters, metrics=("auc", "pauc", "f1"), sets=("dev",),
                     index_columns=("machine_type", "unit", "domain"), extra_columns=extra)


def table2_ours(per_unit, summary):
    """Our Table 2 rows: per section and domain, and the harmonic mean per machine type (section ``all``)."""
    metrics = ("auc", "pauc", "f1")
    sections = _ours(per_unit, ["proposed"], "dev", metrics)
    means = _ours(summary, ["proposed"], "dev", metrics, domain="all", statistic="harmonic mean").assign(unit="all")
    return pd.concat([sections, means], ignore_index=True)


def table3_spec(types=()):
    """Table 3: harmonic means of each term of eqs. (2)-(3) alone and of the proposed ensemble, development
    set; P(x|a,k) is a source-domain, P(x|X_target(s),k) a target-domain term (rows of the other domain: none,
    as in the paper)."""
    from asdcore.tables import TableSpec

    return TableSpec("wilkinghoff2021_table3", "Table 3: harmonic means of AUC and pAUC (%) of the single "
                     "distributions, development set", row_columns=("distribution",),
                     systems={s: {"distribution": label} for s, label in DISTRIBUTION_SYSTEMS.items()},
                     filters={"machine_type": tuple(types)} if types else {}, sets=("dev",),
                     index_columns=("machine_type", "domain"))


def table3_ours(summary):
    parts = [_ours(summary, [system], "dev", domain=DISTRIBUTION_DOMAIN.get(system, ("source", "target")),
                   statistic="harmonic mean") for system in DISTRIBUTION_SYSTEMS]
    return pd.concat(parts, ignore_index=True)


def table4_spec(types=()):
    """Table 4: harmonic means of the section-only ensemble, the two-head ensemble and the proposed per-type
    combination, development set."""
    from asdcore.tables import TableSpec

    return TableSpec("wilkinghoff2021_table4", "Table 4: harmonic means of AUC and pAUC (%) of the two losses, "
                     "development set", row_columns=("loss",),
                     systems={s: {"loss": label} for s, label in LOSS_SYSTEMS.items()},
                     filters={"machine_type": tuple(types)} if types else {}, sets=("dev",),
                     index_columns=("machine_type", "domain"))


def table4_ours(summary):
    return _ours(summary, LOSS_SYSTEMS, "dev", domain=("source", "target"), statistic="harmonic mean")


def table5_spec(types=()):
    """Table 5: harmonic means per machine type and domain on the evaluation set and the official score
    (machine type ``all``, domain ``all``); the baselines' columns are extra columns."""
    from asdcore.tables import TableSpec

    filters = {"system": ("proposed system", "proposed"), **({"machine_type": tuple(types)} if types else {})}
    return TableSpec("wilkinghoff2021_table5", "Table 5: harmonic means of AUC and pAUC (%), evaluation set "
                     "(score: the official score, harmonic mean of all AUCs and pAUCs)", systems={"proposed": {}},
                     filters=filters, metrics=("auc", "pauc", "score"), sets=("eval",),
                     index_columns=("machine_type", "domain"),
                     extra_columns=_baseline_columns("wilkinghoff2021_table5", [("machine_type", "machine type"),
                                                                                ("domain", "domain")],
                                                     "eval", ("auc", "pauc", "score")))


def table5_ours(summary):
    per_domain = _ours(summary, ["proposed"], "eval", domain=("source", "target"), statistic="harmonic mean")
    official = _ours(summary, ["proposed"], "eval", ("score",), machine_type="all", domain="all",
                     statistic="harmonic mean")
    return pd.concat([per_domain, official], ignore_index=True)


def table2_vs_ensemble_gaps() -> pd.DataFrame:
    """The published Table 2 per-section AUCs and pAUCs of the proposed system, reduced to harmonic means per
    machine type and domain (as Tables 3 and 4 are), beside Table 3's "proposed ensemble" row, which is the
    same system: ``machine_type, domain, metric, table2 (harmonic mean of the sections), table3, gap``.

    They do not agree (up to 0.72 points): the paper's tables were not all computed from one set of scores, so
    each of our rows is compared with the table it belongs to and never across tables."""
    from scipy.stats import hmean

    from asdcore.published import load_table

    table2, table3 = load_table("wilkinghoff2021_table2"), load_table("wilkinghoff2021_table3")
    sections = table2[(table2["system"] == "proposed system") & table2["unit"].str.startswith("section_")]
    ensemble = table3[table3["distribution"] == "proposed ensemble"]
    rows = []
    for row in ensemble.itertuples(index=False):
        chosen = sections[(sections["domain"] == row.domain) & (sections["metric"] == row.metric)]
        if row.machine_type != "all":
            chosen = chosen[chosen["machine_type"] == row.machine_type]
        if chosen.empty or pd.isna(row.value):
            continue
        from_table2 = float(hmean(chosen["value"].to_numpy(dtype=float)))
        rows.append({"machine_type": row.machine_type, "domain": row.domain, "metric": row.metric,
                     "table2": from_table2, "table3": float(row.value), "gap": from_table2 - float(row.value)})
    return pd.DataFrame(rows, columns=["machine_type", "domain", "metric", "table2", "table3", "gap"])


def ensemble_note() -> str:
    """The note printed under Tables 3 and 4: Table 2's sections do not give their "proposed ensemble" row."""
    gaps = table2_vs_ensemble_gaps()
    worst = gaps.loc[gaps["gap"].abs().idxmax()]
    return (f"The paper's Table 2 per-section values do not give the \"proposed ensemble\" harmonic means of "
            f"Tables 3 and 4 (up to {abs(worst['gap']):.2f} points apart: {worst['machine_type']} "
            f"{worst['domain']} {dict(auc='AUC', pauc='pAUC')[worst['metric']]}, "
            f"{worst['table2']:.2f} from Table 2's sections, {worst['table3']:.2f} in Table 3); our rows are "
            "compared with the paper's numbers of the same table")


def paper_tables(experiments, per_unit, summary):
    """``[(TableSpec, our tidy rows)]`` of the tables the experiments reproduce, restricted to our machine
    types; a table none of whose systems we have (Table 5 without evaluation labels) is left out."""
    tables = []
    if "system" in experiments:
        tables += [(table2_spec, table2_ours(per_unit, summary)), (table5_spec, table5_ours(summary))]
    if "distributions" in experiments:
        tables.append((table3_spec, table3_ours(summary)))
    if "losses" in experiments:
        tables.append((table4_spec, table4_ours(summary)))
    return [(spec(sorted(set(ours["machine_type"]))), ours) for spec, ours in tables if not ours.empty]


def report(ctx, experiments, per_unit, summary, notes) -> list[str]:
    """The sections of comparison.md (Tables 2-5 for the experiments run, :func:`paper_tables`); also printed."""
    from asdcore.tables import render_markdown

    text = ["Experiments: " + ", ".join(experiments), ""]
    if summary.empty:
        return text + ["No labelled test clips: submission files only."]
    for spec, ours in paper_tables(experiments, per_unit, summary):
        extra = [ensemble_note()] if spec.published in ("wilkinghoff2021_table3", "wilkinghoff2021_table4") else []
        markdown, frame = render_markdown(spec, ours, list(notes) + extra)
        text.append(markdown)
        print("\n" + spec.title + (f"  [{QUICK_BANNER}]" if ctx.quick else ""))
        print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    official = summary[(summary["system"] == "proposed") & (summary["machine_type"] == "all")
                       & (summary["domain"] == "all") & (summary["statistic"] == "harmonic mean")]
    for row in official.itertuples(index=False):
        print(f"official score (harmonic mean of all AUCs and pAUCs), {row.part}: {100 * row.score:.2f} %")
    return text
