"""Paper tables of the ``ddcsad`` command (Kuroyanagi et al., Tables I and II, Fig. 2): the
:class:`~asdcore.tables.TableSpec` s over ``asdcore/published/kuroyanagi2020_table{1,2}.csv`` with their
hooks (the paper's 'AUC ± CI' layout, the alpha chosen on our development IDs) and the markdown of
comparison.md.

Keras-free; the driver is :mod:`ddcsad.experiments`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


TYPE_ORDER = ("fan", "pump", "slider", "ToyCar", "ToyConveyor", "valve", "Machine Average")
"""Row order of Table II."""


# ------------------------------------------------------------------------------------------ paper tables

def _fmt(auc, half) -> str:
    if auc is None or not np.isfinite(auc):
        return "-"
    return f"{100 * auc:.2f}" + (f" ± {100 * half:.2f}" if half is not None and np.isfinite(half) else "")


def _table2_spec(part: str, table2: pd.DataFrame, with_paper: bool):
    """Table II as a :class:`asdcore.tables.TableSpec`: rows machine types, columns ``<METHOD> (ours)`` /
    ``(paper)`` as 'AUC ± CI'; the intervals and the paper's layout come from the extra_columns hook."""
    from asdcore.published import load_table
    from asdcore.tables import TableSpec

    ours = table2[table2["part"] == part]
    methods = list(dict.fromkeys(ours["method"]))
    types = [t for t in TYPE_ORDER if t in set(ours["machine_type"])]
    key = {"Machine Average": "all"}
    ci_ours = {(m, key.get(t, t)): c for m, t, c in zip(ours["method"], ours["machine_type"], ours["ci95"])}
    paper = load_table("kuroyanagi2020_table2")
    paper = paper[paper["metric"] == "auc_ci95"]
    ci_paper = {(m, t): v / 100 for m, t, v in zip(paper["method"], paper["machine_type"], paper["value"])}

    def layout(wide):
        cells = {(m, t): (a, b) for m, t, a, b in zip(wide["method"], wide["machine type"],
                                                       wide[f"{part} AUC (ours)"], wide[f"{part} AUC (paper)"])}
        out = pd.DataFrame({"machine type": types})
        for method in methods:
            values = [cells.get((method, key.get(t, t)), (np.nan, np.nan)) for t in types]
            out[f"{method} (ours)"] = [_fmt(a / 100, ci_ours.get((method, key.get(t, t)))) for (a, _), t
                                       in zip(values, types)]
            if with_paper:
                out[f"{method} (paper)"] = [_fmt(b / 100, ci_paper.get((method, key.get(t, t)))) for (_, b), t
                                            in zip(values, types)]
        return out

    title = ("Table II: AUC [%] per machine type (evaluation set)" if part == "eval"
             else "Development (validation) set: AUC [%] per machine type (the paper prints none)")
    spec = TableSpec("kuroyanagi2020_table2", title, row_columns=("method",), metrics=("auc",), sets=(part,),
                     systems={loss: {"method": m} for loss, m in dict(zip(ours["loss"], ours["method"])).items()},
                     filters={"method": tuple(methods), "machine_type": tuple(key.get(t, t) for t in types)},
                     extra_columns=layout)
    tidy = ours.assign(system=ours["loss"], set=part, metric="auc", value=100 * ours["auc"],
                       machine_type=ours["machine_type"].replace(key))
    return spec, tidy[["system", "method", "machine_type", "set", "metric", "value"]]


def _table1_spec(alphas: pd.DataFrame):
    """Table I beside the alpha chosen on our development IDs (extra columns: its AUC, the alpha used)."""
    from asdcore.tables import TableSpec

    show = alphas[alphas["alpha_table1"].notna() & alphas["loss"].isin(["bce+dsad", "bce+ddcsad"])]
    used = {(m, t): (a, u) for m, t, a, u in zip(show["method"], show["machine_type"], show["validation_auc"],
                                                 show["alpha_used"])}

    def extra(wide):
        pairs = [used.get((m, t), (np.nan, np.nan)) for m, t in zip(wide["method"], wide["machine type"])]
        return wide.assign(**{"validation AUC": [a for a, _ in pairs], "alpha used": [u for _, u in pairs]})

    spec = TableSpec("kuroyanagi2020_table1", "Table I: alpha of eq. (5) - paper vs. chosen on our development "
                     "(validation) IDs", row_columns=("method",), metrics=("alpha",), sets=("dev",),
                     systems={loss: {"method": m} for loss, m in dict(zip(show["loss"], show["method"])).items()},
                     filters={"method": tuple(show["method"].unique()), "machine_type": tuple(show["machine_type"])},
                     extra_columns=extra)
    tidy = show.assign(system=show["loss"], set="dev", metric="alpha", value=show["alpha_validation"])
    return spec, tidy[["system", "method", "machine_type", "set", "metric", "value"]]


def _report(ctx, table2, summary, alphas, fig2) -> list[str]:
    from asdcore.experiment import QUICK_BANNER
    from asdcore.report import comparison_markdown
    from asdcore.tables import render_markdown

    config, ids = ctx.config, ctx.state["ids"]
    notes = [f"{len(ids)} machine IDs ({', '.join(sorted({p for p, _, _ in ids}))}), backbone {config.backbone}, "
             f"{config.iterations} iterations, batches {':'.join(map(str, config.batch_composition))}, "
             f"alpha: {config.alpha}, amplitude normalisation per {config.amplitude_norm}",
             "AUC of the pooled test clips of all IDs of a type, ± 1.96 SE (Hanley & McNeil); the paper's "
             "Table II set is inferred to be the evaluation set; organisers' per-ID means are in results.csv"]
    lines, printable = [], None
    parts = [p for p in ("eval", "dev") if len(table2) and (table2["part"] == p).any()]
    for part in parts:
        spec, ours = _table2_spec(part, table2, with_paper=part == "eval")
        text, frame = render_markdown(spec, ours, notes if part == parts[0] else None)
        lines.append(text)
        printable = frame if printable is None else printable
    if summary is not None and len(summary):
        org = summary[summary["statistic"].isin(["arithmetic mean", "arithmetic mean of type means"])].copy()
        org = org[(org["machine_type"] != "all") | (org["statistic"] == "arithmetic mean of type means")]
        org["auc"], org["pauc"] = 100 * org["auc"], 100 * org["pauc"]
        wide = org.pivot_table(index=["part", "machine_type"], columns="system", values=["auc", "pauc"], sort=False)
        wide.columns = [f"{s} {m.upper() if m == 'auc' else 'pAUC'}" for m, s in wide.columns]
        lines.append(comparison_markdown("Organisers' statistics: mean over IDs of the per-ID AUC / pAUC [%]",
                                         wide.reset_index(), ["'all' = mean of the per-type means"]))
    spec, ours = _table1_spec(alphas)
    if len(ours):
        lines.append(render_markdown(spec, ours, [f"used: alpha = {config.alpha}"])[0])
    if len(fig2):
        f = fig2.assign(**{"AUC [%]": [_fmt(a, h) for a, h in zip(fig2["auc"], fig2["ci95"])]})
        wide = f.pivot_table(index=["part", "method", "machine_type"], columns="anomalies", values="AUC [%]",
                             aggfunc="first", sort=False).reset_index()
        wide.columns = [str(c) for c in wide.columns]
        notes2 = ["columns: real anomalous clips per ID used in training (0 = the Table II model); all evaluated "
                  "without the pooled clips; plot: plots/fig2_<part>.png"]
        if ctx.state["dropped"]:
            notes2.append(f"counts {ctx.state['dropped']} left out: some ID has fewer pooled anomalies")
        if ctx.quick:
            notes2.insert(0, QUICK_BANNER)
        lines.append(comparison_markdown("Fig. 2: AUC [%] ± 95 % CI against the number of real anomalies",
                                         wide, notes2))
    if printable is not None:
        print(("QUICK MODE - " if ctx.quick else "")
              + "AUC [%] +/- 95 % CI per machine type (pooled IDs), ours vs paper:")
        print(printable.to_string(index=False))
    return lines
