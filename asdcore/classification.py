"""Classification accuracy of the learned networks on the normal test clips (issue 14).

The sub-cluster AdaCos networks (Wilkinghoff 2020, 2021) and SerialOE (Fujimura et al.) are trained as
classifiers of the machine ID / section; how often they name the right one on normal test clips they have
never seen says whether they learned anything, independently of the anomaly scores. One function computes
the accuracy for every method (:func:`accuracy_by_type`); :func:`nearest_centre_classes` is the decision of
a cosine head with sub-clusters; the run writes ``classification.csv`` and a short section of
``comparison.md`` (:func:`classification_section`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asdcore.errors import ASDError

__all__ = ["nearest_centre_classes", "accuracy_by_type", "normal_test_rows", "classification_section",
           "with_sections", "report_classification", "NOT_A_CLASSIFIER"]

#: the ``head`` of a model that has no classifier (DDCSAD): its accuracy is reported as "n/a"
NOT_A_CLASSIFIER = "none"


def nearest_centre_classes(embeddings, centres) -> np.ndarray:
    """Class of each embedding under a cosine head with sub-clusters: ``argmax_j max_l cos(x, w_jl)``.

    ``embeddings`` (n, D); ``centres`` (classes, S, D) (sub-cluster AdaCos: column ``j*S + l`` of the head's
    weights is ``centres[j, l]``, Wilkinghoff 2020 eq. (9); the class with the largest sub-cluster cosine has
    the largest summed probability for a large scale).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    w = np.asarray(centres, dtype=np.float64)
    if x.ndim != 2 or w.ndim != 3 or w.shape[2] != x.shape[1]:
        raise ASDError(f"nearest_centre_classes: embeddings {x.shape} and centres {w.shape} must be (n, D) and "
                       "(classes, S, D)")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    w = w / np.maximum(np.linalg.norm(w, axis=2, keepdims=True), 1e-12)
    return np.einsum("nd,jsd->njs", x, w).max(axis=2).argmax(axis=1)


def normal_test_rows(table: pd.DataFrame) -> np.ndarray:
    """Positions of the normal test clips (the clips whose class the networks should name)."""
    from asdcore.selection import rows

    return np.flatnonzero(rows(table, split="test", label="normal"))


def accuracy_by_type(true, predicted, machine_types, **labels) -> pd.DataFrame:
    """Share of clips whose predicted class is the true one, per machine type and for all clips ("all").

    ``true``, ``predicted`` : class names or indices per clip; ``labels`` (e.g. ``network=..., head=...``)
    become the first columns. Returns columns ``*labels, machine_type, n_clips, correct, accuracy``.
    """
    true, predicted = np.asarray(true), np.asarray(predicted)
    types = np.asarray(machine_types).astype(str)
    if not (len(true) == len(predicted) == len(types)):
        raise ASDError(f"accuracy: {len(true)} true classes, {len(predicted)} predictions, {len(types)} types")
    hit = true == predicted
    records = [{**labels, "machine_type": t, "n_clips": int((types == t).sum()), "correct": int(hit[types == t].sum())}
               for t in sorted(set(types))]
    records.append({**labels, "machine_type": "all", "n_clips": len(hit), "correct": int(hit.sum())})
    frame = pd.DataFrame(records)
    frame["accuracy"] = np.where(frame["n_clips"] > 0, frame["correct"] / frame["n_clips"].clip(lower=1), np.nan)
    return frame


def classification_section(frame: pd.DataFrame, notes=()) -> str:
    """The markdown section of ``comparison.md``: accuracy [%] per network / head (rows) and machine type."""
    from asdcore.report import MACHINE_ORDER, comparison_markdown

    title = "Classification accuracy of the learned networks on the normal test clips [%]"
    if frame.empty:
        return comparison_markdown(title, pd.DataFrame({"": ["no normal test clips"]}), list(notes))
    shown = frame.assign(accuracy=[("n/a" if h == NOT_A_CLASSIFIER else (f"{100 * a:.1f}" if np.isfinite(a) else "-"))
                                   for h, a in zip(frame["head"], frame["accuracy"].astype(float))])
    wide = shown.pivot_table(index=["network", "head"], columns="machine_type", values="accuracy",
                             aggfunc="first", sort=False)
    rank = {m: i for i, m in enumerate(MACHINE_ORDER)}
    wide = wide[sorted(wide.columns, key=lambda m: rank.get(m, len(rank) - 0.5))].reset_index()
    wide.columns = [str(c) for c in wide.columns]
    return comparison_markdown(title, wide.fillna("-"), list(notes), digits=1)


def with_sections(report, sections):
    """A ``report(ctx, per_unit, summary)`` of :class:`asdcore.runner.Assembled` that returns the method's
    sections followed by ``sections`` (e.g. :func:`classification_section`)."""
    def combined(ctx, per_unit, summary):
        return list(report(ctx, per_unit, summary) if report is not None else []) + list(sections)

    return combined


def report_classification(ctx, frame: pd.DataFrame, notes=()) -> list[str]:
    """Write ``classification.csv`` (with the run's ``mode`` and ``data``) and return the comparison.md section."""
    ctx.run.write_csv("classification.csv", frame.assign(**ctx.labels))
    for row in (frame[frame["machine_type"] == "all"] if len(frame) else frame).itertuples(index=False):
        ctx.log.info("classification accuracy on normal test clips, %s (%s): %s", row.network, row.head,
                     "n/a" if row.head == NOT_A_CLASSIFIER else f"{100 * row.accuracy:.1f} %")
    return [classification_section(frame, notes)]
