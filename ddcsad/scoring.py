"""Anomaly scores of the BCE + DDCSAD system (Kuroyanagi et al., Sec. III eq. 5, Sec. IV-A, Table I) and
the per-machine-type AUCs with 95 % confidence intervals of Table II and Fig. 2.

Crops (Sec. IV-A)
-----------------
"we divided the number of frames in each sample's acoustic feature series into ten sections, with overlap
allowed so that the frame length was equal to 256. We calculated anomaly scores for each segment ... and
these scores were then averaged": :func:`crop_outputs` runs the network on the ten evenly spaced
256-frame crops spread over the *whole* clip (:func:`ddcsad.data.crop_starts`: starts 0, 6, 13, ..., 57
for 313 frames, 0, ..., 96 for the 353 frames of an 11.3 s ToyCar clip; each clip by its own length) and
keeps, per crop, the logit of the linear layer and the squared distance d = ||z - c_p||^2.

1 - p without saturation
------------------------
p = sigmoid(logit) is "normal"'s posterior. In float32, sigmoid returns exactly 1.0 for logits above
~17, so ``1 - p`` would tie confident clips at 0. Every score here takes ``1 - p = sigmoid(-logit)``
computed in float64 from the logit (:func:`one_minus_p`): two clips tie only if their logits tie (to
float64 resolution, up to logits of ~700).

Eq. (5)
-------
``s = alpha (1 - p) + (1 - alpha) d'``, with d' the distance min-max normalised "across the entire set of
evaluation data" (to [0, 1]). Open choices, named options of :func:`eq5`:

* *which set*: there is one model (and one c_p) per machine ID, so distances of different IDs are not on
  one scale; d is normalised over the evaluated test clips of the same ID (the experiment calls
  :func:`eq5` once per ID);
* *crops or clips* (``minmax_over``): ``"crops"`` (default, the literal order of Sec. IV-A: a score per
  segment, then the average) min-max normalises the distances of all crops of the evaluated clips, scores
  each crop and averages; ``"clips"`` averages p and d over the crops first and normalises the clip means.

The five losses use: BCE ``s = 1 - p`` (alpha = 1; there is no centroid); DSAD and DDCSAD ``s = d'``
(alpha = 0; the linear layer is not trained); BCE+DSAD and BCE+DDCSAD eq. (5) with alpha per machine
type from Table I (:func:`table1_alpha`) or chosen on the validation data (:func:`choose_alpha`, the
paper's procedure: "The values of alpha for inference were decided using the validation data").

Per-type AUC and its interval (Table II, Fig. 2)
------------------------------------------------
Table II prints one AUC per machine type with a Hanley & McNeil (1982) 95 % interval. An interval needs
one AUC and its counts of normal and anomalous clips; the printed half-widths (0.9-3.0 points at AUCs of
64-98 %) need several hundred clips of each class, i.e. a machine type's test clips of all its IDs
together, not one ID's. :func:`type_auc` therefore pools the scores of all IDs of a type (eq. 5 puts
each ID's scores on [0, 1]) and computes AUC, pAUC and ``AUC -/+ 1.96 SE``; "Machine Average" is the mean
of the per-type AUCs. The organisers' per-ID AUCs and their means are in ``results.csv``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.metrics import auc as roc_auc
from asdcore.metrics import hanley_mcneil_se, pauc
from ddcsad.losses import centroid_term, check_variant, uses_bce

__all__ = [
    "ALPHA_GRID",
    "MINMAX_OVER",
    "PAPER_NAMES",
    "crop_outputs",
    "one_minus_p",
    "minmax",
    "eq5",
    "fixed_alpha",
    "table1_alpha",
    "variant_scores",
    "choose_alpha",
    "type_auc",
    "machine_average",
    "alpha_table",
    "id_scores",
    "table2_frame",
]

ALPHA_GRID = tuple(round(0.1 * i, 1) for i in range(11))
"""alpha values tried on the validation data (Table I prints multiples of 0.1 between 0 and 1)."""
MINMAX_OVER = ("crops", "clips")
PAPER_NAMES = {"bce": "BCE", "dsad": "DSAD", "ddcsad": "DDCSAD", "bce+dsad": "BCE+DSAD",
               "bce+ddcsad": "BCE+DDCSAD"}
"""Our loss names -> the paper's (Tables I and II)."""


def crop_outputs(model, features, rows=None, n_crops: int = 10, crop_frames: int = 256,
                 batch_size: int = 64, chunk_clips: int = 64, lengths=None, embeddings: bool = False) -> tuple:
    """Logit and squared distance d of every crop of the clips ``rows`` of ``features`` (and, with
    ``embeddings``, each clip's embedding: z averaged over its crops, from the same forward passes).

    Parameters
    ----------
    model : ddcsad.model.DDCSADModel
        Its ``predict`` gives ``{"logit": [B], "distance": [B], ...}``.
    features : numpy.ndarray
        ``[clips, frames, mels]`` (clips shorter than the array padded at the end, see ``lengths``).
    rows : array of int, optional
        Which clips (default all).
    n_crops, crop_frames : int
        Ten crops of 256 frames (Sec. IV-A), evenly spaced over each clip's own frames.
    batch_size : int
        Crops per forward pass.
    chunk_clips : int
        Clips cropped at a time (bounds the memory).
    lengths : array of int, optional
        Valid frames of every clip of ``features`` (default: all frames of the array).
    embeddings : bool
        Also return the clips' mean crop embeddings z ``[len(rows), D]`` float32 (the embedding maps).

    Returns
    -------
    logit, d : numpy.ndarray
        ``[len(rows), n_crops]`` float64; with ``embeddings`` a third array, ``[len(rows), D]``.
    """
    from ddcsad.data import gather_crops

    rows = np.arange(len(features)) if rows is None else np.asarray(rows, np.int64)
    lengths = np.full(len(features), features.shape[1]) if lengths is None else np.asarray(lengths, np.int64)
    logit_out = np.empty((len(rows), n_crops))
    d_out = np.empty((len(rows), n_crops))
    z_out = None
    for s in range(0, len(rows), chunk_clips):
        part = rows[s: s + chunk_clips]
        x = gather_crops(features, part, lengths[part], n_crops, crop_frames)
        x = x.reshape((-1,) + x.shape[2:])
        n = len(x)
        pad = (-n) % batch_size  # one batch shape only: no retracing of the predict function
        if pad:
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        out = model.predict(x, batch_size=batch_size, verbose=0)
        logit_out[s: s + len(part)] = np.asarray(out["logit"], np.float64)[:n].reshape(len(part), n_crops)
        d_out[s: s + len(part)] = np.asarray(out["distance"], np.float64)[:n].reshape(len(part), n_crops)
        if embeddings:
            z = np.asarray(out["embedding"], np.float32)[:n]
            z_out = np.empty((len(rows), z.shape[-1]), np.float32) if z_out is None else z_out
            z_out[s: s + len(part)] = z.reshape(len(part), n_crops, -1).mean(axis=1)
    if embeddings:
        return logit_out, d_out, np.zeros((0, 0), np.float32) if z_out is None else z_out
    return logit_out, d_out


def one_minus_p(logit) -> np.ndarray:
    """``1 - p = 1 - sigmoid(logit) = sigmoid(-logit)`` in float64, from the logit (no saturation).

    ``exp(-logaddexp(0, logit))``: exact for large logits (e^-40 ~ 4.2e-18, where a float32 sigmoid
    gives p = 1 and 1 - p = 0 for every logit above ~17) and for very negative ones.
    """
    z = np.asarray(logit, np.float64)
    return np.exp(-np.logaddexp(0.0, z))


def minmax(values, bounds=None) -> np.ndarray:
    """``(v - min) / (max - min)`` over all entries (to [0, 1]); all zeros when every value is equal.

    ``bounds=(lo, hi)``: statistics stored beforehand (``asd fit``: the machine's normal training crops), so
    that a clip's value does not depend on the other clips scored with it (values may leave [0, 1])."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return v
    lo, hi = (float(np.min(v)), float(np.max(v))) if bounds is None else (float(bounds[0]), float(bounds[1]))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ASDError("ddcsad/scoring.py: distances are NaN or infinite; the model diverged (lower the learning rate)")
    if hi == lo:
        return np.zeros_like(v)
    return (v - lo) / (hi - lo)


def eq5(logit, d, alpha: float, minmax_over: str = "crops", bounds=None) -> np.ndarray:
    """Eq. (5): ``s = alpha (1 - p) + (1 - alpha) d'`` for the clips of one evaluated set.

    Parameters
    ----------
    logit, d : array ``[clips, crops]`` (or ``[clips]``)
        Logits of the linear layer (p = sigmoid(logit), the posterior of "normal"; 1 - p is computed
        from the logit by :func:`one_minus_p`) and squared distances to c_p of each crop.
    alpha : float in [0, 1]
    minmax_over : {"crops", "clips"}
        ``"crops"``: d' = min-max of d over all crops of all clips, a score per crop, averaged over the
        crops of each clip. ``"clips"``: 1 - p and d averaged over the crops first, d' = min-max over
        clips.
    bounds : (lo, hi), optional
        Min-max statistics stored beforehand instead of those of the given clips (:func:`minmax`).

    Returns
    -------
    numpy.ndarray ``[clips]``
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ASDError(f"ddcsad/scoring.py: alpha={alpha} must lie in [0, 1] (eq. 5)")
    logit = np.asarray(logit, np.float64)
    d = np.asarray(d, np.float64)
    if logit.shape != d.shape:
        raise ASDError(f"ddcsad/scoring.py: logit {logit.shape} and d {d.shape} differ in shape")
    if logit.ndim == 1:
        logit, d = logit[:, None], d[:, None]
    q = one_minus_p(logit)
    if alpha == 1.0:  # no distance term: d' (and its checks) not needed, BCE's s = 1 - p
        return q.mean(axis=1)
    if minmax_over == "crops":
        return (alpha * q + (1.0 - alpha) * minmax(d, bounds)).mean(axis=1)
    if minmax_over == "clips":
        return alpha * q.mean(axis=1) + (1.0 - alpha) * minmax(d.mean(axis=1), bounds)
    raise ASDError(f"ddcsad/scoring.py: minmax_over={minmax_over!r}; use one of {', '.join(MINMAX_OVER)}")


def fixed_alpha(variant: str) -> float | None:
    """alpha implied by a loss without both outputs: 1 for BCE (s = 1 - p), 0 for DSAD/DDCSAD (s = d');
    None for BCE+DSAD and BCE+DDCSAD (alpha is a hyperparameter, Table I)."""
    name = check_variant(variant)
    if uses_bce(name) and centroid_term(name):
        return None
    return 1.0 if uses_bce(name) else 0.0


def table1_alpha(variant: str, machine_type: str) -> float:
    """alpha of Table I for BCE+DSAD / BCE+DDCSAD and a machine type (the fixed value for other losses)."""
    fixed = fixed_alpha(variant)
    if fixed is not None:
        return fixed
    from asdcore.published import load_table

    table = load_table("kuroyanagi2020_table1")
    row = table[(table["method"] == PAPER_NAMES[check_variant(variant)]) & (table["machine_type"] == machine_type)
                & (table["metric"] == "alpha")]
    if len(row) != 1:
        raise ASDError(f"ddcsad/scoring.py: Table I has no alpha for {variant} and {machine_type!r}; "
                       "choose alpha on validation data (alpha: validation) or give a number")
    return float(row["value"].iloc[0])


def variant_scores(variant: str, logit, d, alpha: float | None = None, minmax_over: str = "crops") -> np.ndarray:
    """Scores of one evaluated set (one machine ID) for a loss: ``1 - p``, ``d'`` or eq. (5) (:func:`eq5`).

    ``alpha`` is used for BCE+DSAD and BCE+DDCSAD only (and must be given there).
    """
    fixed = fixed_alpha(variant)
    if fixed is None and alpha is None:
        raise ASDError(f"ddcsad/scoring.py: {variant} needs alpha (Table I or validation)")
    return eq5(logit, d, fixed if fixed is not None else alpha, minmax_over)


def choose_alpha(sets, grid=ALPHA_GRID, minmax_over: str = "crops") -> tuple[float, pd.DataFrame]:
    """The alpha of ``grid`` with the best AUC on validation data (one machine type).

    Parameters
    ----------
    sets : list of (logit, d, is_anomaly)
        One entry per validation machine ID of the type: crop outputs ``[clips, crops]`` and the labels
        (True = anomalous) of its labelled test clips. Each ID is scored with eq. (5) on its own
        (min-max over its clips), then the scores of all IDs are pooled as in :func:`type_auc`.
    grid : sequence of float
    minmax_over : str

    Returns
    -------
    alpha : float
        Highest pooled AUC; ties go to the smallest alpha.
    curve : DataFrame
        ``alpha, auc`` for every grid value.
    """
    if not sets:
        raise ASDError("ddcsad/scoring.py: choose_alpha needs at least one validation machine ID")
    labels = np.concatenate([np.asarray(y, bool) for _, _, y in sets])
    rows = []
    for alpha in grid:
        scores = np.concatenate([eq5(logit, d, alpha, minmax_over) for logit, d, _ in sets])
        rows.append({"alpha": float(alpha), "auc": roc_auc(labels, scores)})
    curve = pd.DataFrame(rows)
    best = curve["auc"].to_numpy()
    return float(curve["alpha"].iloc[int(np.argmax(best))]), curve


def type_auc(table: pd.DataFrame, scores, z: float = 1.96) -> pd.DataFrame:
    """Per machine type (and part) the AUC of the pooled test clips of all its IDs, with its interval.

    Parameters
    ----------
    table : DataFrame
        Clip table with ``part, machine_type, split, label``; rows with a finite score and a
        normal/anomaly label among the test clips are used.
    scores : array ``[rows]``
    z : float
        1.96 for 95 %.

    Returns
    -------
    DataFrame
        ``part, machine_type, auc, ci95, auc_ci_low, auc_ci_high, pauc, n_normal, n_anomaly, n_units``
        (fractions; ``ci95`` = z * SE, Hanley & McNeil 1982, the "+/-" of Table II).
    """
    scores = np.asarray(scores, np.float64)
    use = ((table["split"] == "test") & table["label"].isin(["normal", "anomaly"])).to_numpy() & np.isfinite(scores)
    rows = []
    sub = table[use].assign(_score=scores[use])
    for (part, machine_type), group in sub.groupby(["part", "machine_type"], sort=True):
        y = (group["label"] == "anomaly").to_numpy()
        if y.all() or not y.any():
            continue
        a = roc_auc(y, group["_score"].to_numpy())
        half = z * hanley_mcneil_se(a, int(y.sum()), int((~y).sum()))
        rows.append({"part": part, "machine_type": machine_type, "auc": a, "ci95": half,
                     "auc_ci_low": max(0.0, a - half), "auc_ci_high": min(1.0, a + half),
                     "pauc": pauc(y, group["_score"].to_numpy()), "n_normal": int((~y).sum()),
                     "n_anomaly": int(y.sum()), "n_units": int(group["unit"].nunique())})
    return pd.DataFrame(rows, columns=["part", "machine_type", "auc", "ci95", "auc_ci_low", "auc_ci_high",
                                       "pauc", "n_normal", "n_anomaly", "n_units"])


def machine_average(per_type: pd.DataFrame) -> pd.DataFrame:
    """Table II "Machine Average": per part the mean of the per-type AUCs (and pAUCs); no interval."""
    rows = []
    for part, group in per_type.groupby("part", sort=True):
        rows.append({"part": part, "machine_type": "Machine Average", "auc": group["auc"].mean(),
                     "pauc": group["pauc"].mean(), "n_units": int(group["n_units"].sum())})
    return pd.DataFrame(rows)


def alpha_table(losses, table: pd.DataFrame, ids, outputs: dict, alpha="table1", minmax_over: str = "crops",
                log=None) -> pd.DataFrame:
    """alpha of eq. (5) per (loss, machine type): Table I, chosen on the development IDs, and the one used.

    Parameters
    ----------
    ids : list of (part, machine_type, unit)
        The machine IDs with a model.
    outputs : dict
        ``loss -> {"<type>/<unit>": (rows, logit, d)}`` of the models trained without anomalies.
    alpha : "table1", "validation" or a number
        Which alpha is used for BCE+DSAD / BCE+DDCSAD (the other losses imply 0 or 1).

    Returns
    -------
    DataFrame
        ``loss, method, machine_type, alpha_table1, alpha_validation, validation_auc, alpha_used``.
    """
    labels = table["label"].to_numpy()
    later = "year" in table.columns and len(table) and int(table["year"].iloc[0]) != 2020
    rows = []
    for loss in losses:
        pooled = np.nan  # DCASE 2021-2025: one alpha per loss chosen on every development section together
        if later and fixed_alpha(loss) is None:
            pooled = _pooled_validation_alpha(loss, labels, ids, outputs, minmax_over, log)
        for machine_type in sorted({t for _, t, _ in ids}):
            row = {"loss": loss, "method": PAPER_NAMES[loss], "machine_type": machine_type}
            fixed = fixed_alpha(loss)
            try:
                row["alpha_table1"] = table1_alpha(loss, machine_type)
            except ASDError:
                if not later:
                    raise
                row["alpha_table1"] = np.nan  # a type Table I does not know (the later editions' types)
            sets = _labelled_dev_sets(loss, labels, ids, outputs, machine_type)
            row["alpha_validation"], row["validation_auc"] = np.nan, np.nan
            if fixed is None and sets:
                try:
                    best, curve = choose_alpha(sets, ALPHA_GRID, minmax_over)
                    row["alpha_validation"] = best
                    row["validation_auc"] = float(curve["auc"].max())
                except ASDError as err:  # e.g. one class only among the pooled dev clips
                    if log is not None:
                        log.warning("alpha for %s %s not chosen: %s", loss, machine_type, err)
            if fixed is not None:
                used = fixed
            elif alpha == "table1" and later and np.isnan(row["alpha_table1"]):
                if np.isnan(pooled):
                    raise ASDError(f"alpha for {loss} and {machine_type}: not in Table I and no labelled development "
                                   "test clips to choose it on; give a number (alpha: 0.5)")
                used = pooled  # adaptation "alpha: pooled validation" (docs/later-dcase.md)
            elif alpha == "table1":
                used = row["alpha_table1"]
            elif alpha == "validation":
                if np.isnan(row["alpha_validation"]):
                    raise ASDError(f"alpha: validation needs labelled dev test clips of {machine_type}; "
                                   "train dev IDs (parts: [dev, eval]) or use alpha: table1")
                used = row["alpha_validation"]
            else:
                used = float(alpha)
            row["alpha_used"] = used
            rows.append(row)
    return pd.DataFrame(rows)


def _labelled_dev_sets(loss, labels, ids, outputs, machine_type=None) -> list:
    """``(logit, distance, is_anomaly)`` of the labelled test clips of each development unit (of one machine
    type, or of all) that holds both classes: what :func:`choose_alpha` chooses alpha on."""
    sets = []
    for part, t, u in ids:
        if part != "dev" or (machine_type is not None and t != machine_type):
            continue
        rows_u, logit, d = outputs[loss][f"{t}/{u}"]
        keep = np.isin(labels[rows_u], ["normal", "anomaly"])
        y = labels[rows_u] == "anomaly"
        if keep.any() and y[keep].any() and not y[keep].all():
            sets.append((logit[keep], d[keep], y[keep]))
    return sets


def _pooled_validation_alpha(loss, labels, ids, outputs, minmax_over, log) -> float:
    """The later editions' alpha for a type Table I does not list (named adaptation "pooled validation"): the
    grid value with the best pooled AUC over the labelled test clips of *every* development section (the
    evaluation-only types of 2023-2025 have no development sections of their own)."""
    sets = _labelled_dev_sets(loss, labels, ids, outputs)
    if not sets:
        return np.nan
    best, curve = choose_alpha(sets, ALPHA_GRID, minmax_over)
    if log is not None:
        log.info("alpha for %s chosen on all %d development sections together: %.1f (AUC %.3f)", loss, len(sets),
                 best, float(curve["auc"].max()))
    return best


def id_scores(loss: str, n_rows: int, ids, outputs: dict, alphas: pd.DataFrame, minmax_over: str = "crops",
              pool: dict | None = None) -> np.ndarray:
    """Scores aligned with the clip table (NaN where not scored): eq. (5) per ID over its evaluated clips.

    ``outputs``: ``"<type>/<unit>" -> (rows, logit, d)`` of one loss's models; ``pool``: the Fig. 2 pools,
    whose clips are left out (the model trained without anomalies evaluated like the fine-tuned ones).
    """
    used = {(r.loss, r.machine_type): float(r.alpha_used) for r in alphas.itertuples()}
    scores = np.full(n_rows, np.nan)
    for _part, machine_type, unit in ids:
        key = f"{machine_type}/{unit}"
        rows, logit, d = outputs[key]
        if pool is not None:
            keep = ~np.isin(rows, pool.get(key, []))
            rows, logit, d = rows[keep], logit[keep], d[keep]
        scores[rows] = variant_scores(loss, logit, d, used[(loss, machine_type)], minmax_over)
    return scores


def table2_frame(table: pd.DataFrame, systems: dict) -> pd.DataFrame:
    """Table II's cells: per loss, part and machine type the pooled AUC +/- 95 % (:func:`type_auc`) and the
    Machine Average (:func:`machine_average`); columns ``loss, method, part, machine_type, auc, ci95, ...``."""
    frames = []
    for loss, scores in systems.items():
        per_type = type_auc(table, scores)
        if per_type.empty:
            continue
        both = pd.concat([per_type, machine_average(per_type)], ignore_index=True)
        both.insert(0, "method", PAPER_NAMES[loss])
        both.insert(0, "loss", loss)
        frames.append(both)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
