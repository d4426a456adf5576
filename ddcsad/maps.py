"""What the DDCSAD models learned: embedding maps of the Table II models (issue 14).

Kuroyanagi et al. train one model per machine ID, so each ID's test clips live in their own embedding space:
per machine type one figure with one panel (one PCA) per ID, the ID's test clips embedded by that ID's model
(z of eq. (2)-(3), averaged over the ten crops of a clip) with the centroids c_p (normal clips) and c_n
(outliers: other machine types' clips) marked. The map shows the loss the paper proposes (BCE + DDCSAD) when
the run trained it, else the first of DDCSAD, BCE + DSAD, DSAD, BCE. Drawn in Euclidean space, not
normalised: the centroid losses and the eq. (5) score use Euclidean distances. The models are one-class
detectors, not ID classifiers: their classification accuracy is "n/a".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asdcore.classification import NOT_A_CLASSIFIER, report_classification
from asdcore.embedding_maps import write_run_maps

__all__ = ["MAP_LOSS_ORDER", "diagnostics"]

#: the loss whose models the maps show: the first of these the run trained
MAP_LOSS_ORDER = ("bce+ddcsad", "ddcsad", "bce+dsad", "dsad", "bce")


def diagnostics(ctx, units) -> list[str]:
    """Write ``plots/embeddings/<type>.png`` and ``classification.csv`` ("n/a"); return the comparison.md
    section. ``units``: the run's units (spec ``loss``, ``machine_type``, ``unit``)."""
    from ddcsad.losses import centroid_term
    from ddcsad.training import load_embeddings

    losses = [u.spec["loss"] for u in units]
    loss = next((name for name in MAP_LOSS_ORDER if name in losses), None)
    stored = [(u, load_embeddings(u.folder)) for u in units if u.spec["loss"] == loss]
    stored = [(u, s) for u, s in stored if s is not None and len(s[0])]
    if stored:
        rows = np.concatenate([s[0] for _, s in stored])
        embeddings = np.concatenate([s[1] for _, s in stored])
        # DDCSAD: both centroids; DSAD: its one centroid c (= c_p); BCE alone never computes them
        kinds = {"ddcsad": ("c_p", "c_n"), "dsad": ("c_p",)}.get(centroid_term(loss), ())
        centres = np.stack([s[2 + i] for _, s in stored for i in range(len(kinds))]) if kinds else None
        centre_rows = pd.DataFrame([{"machine_type": u.spec["machine_type"], "unit": u.spec["unit"], "kind": kind}
                                    for u, _ in stored for kind in kinds]) if kinds else None
        write_run_maps(ctx, embeddings, ctx.table.iloc[rows], f"{loss.upper()} model of each machine ID (one "
                       "panel and one PCA per ID)", centres=centres, centre_rows=centre_rows, panel_column="unit",
                       normalise=False, unit_name="ID")
    elif units:
        ctx.log.warning("embedding maps: the unit folders hold no embeddings (trained before they were kept); "
                        "no maps")
    frame = pd.DataFrame([{"network": "DDCSAD (one model per ID)", "head": NOT_A_CLASSIFIER, "machine_type": "all",
                           "n_clips": 0, "correct": 0, "accuracy": np.nan}])
    return report_classification(ctx, frame, ["n/a: the models are one-class detectors (normal vs. outlier), "
                                              "one per machine ID; none names an ID"])
