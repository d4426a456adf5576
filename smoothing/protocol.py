"""The experimental protocol of Fujimura et al. (section IV-A, Tables I-II, Fig. 5), without any network.

Everything here works on NumPy arrays and the clip table, so it is tested with hand-made scores:

- :func:`training_split` -- "we used 85 % of the source domain data and two samples of the target domain
  data. The remaining samples were treated as the validation set" (IV-A), per section, deterministic.
- :class:`UnitEvaluator` -- AUC and pAUC per (machine type, section, domain) as the DCASE 2021 evaluator
  (:mod:`asdcore.metrics`), fast enough to score hundreds of settings; :meth:`UnitEvaluator.type_scores`
  is the statistic of Table II: per machine type the harmonic mean of all its AUC and pAUC values
  ("All-hmean" over every machine type).
- :func:`k_grid`, :func:`smooth_grid` -- a_prop (eq. 7) for every K and every "Data" choice of Table I.
- :func:`grid_table`, :func:`select_best`, :func:`compose` -- hyper-parameters chosen per machine type on
  sections 00-02 (``part="dev"``: Proposed, SerialOE) or on sections 03-05 (``part="eval"``: Proposed
  (Oracle)), and the chosen scores put together into one system.
- :func:`fraction_draw`, :func:`fraction_curve` -- Fig. 5: smoothing with a fraction of the test clips.

Choices the paper leaves open (documented where they are made; each is a setting of
:class:`smoothing.settings.ProtocolConfig`):

- **Ties** in the selection go to the setting listed first (smaller K, "source" before "all"; fewer
  clusters): the simpler one.
- **K grid**: powers of two from ``k_min`` (2; K = 1 is the AE itself) to 2048 (Table I), every one
  evaluated. A (data, K) whose K-1 neighbours cover every candidate of every pool is *saturated*
  (:func:`saturated_settings`): its a_prop is exactly the same for every candidate clip
  (:mod:`smoothing.knn`), and the command reports it as such in the log, ``selection.csv`` and
  ``table1.csv`` instead of presenting it as a tuned choice.
- **Fig. 5 hyper-parameters** ("We always gave the best hyperparameter"): per fraction and machine type
  the setting with the best mean over the draws (``"per_fraction"``), or the Oracle setting of the full
  test set (``"oracle"``).
- **Fig. 5 draws**: ``max(1, round(fraction * n))`` clips of every (machine type, section, domain, label)
  group, so every group keeps its share and at least one clip (AUC needs both labels).
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.metrics import EPS

__all__ = [
    "training_split",
    "UnitEvaluator",
    "k_grid",
    "pool_sizes",
    "saturated_settings",
    "smooth_grid",
    "grid_table",
    "select_best",
    "fill_unseen_types",
    "compose",
    "fraction_draw",
    "fraction_curve",
    "FIG5_FRACTIONS",
    "smoothing_items",
    "saturation_frame",
    "with_saturation",
    "toycar5_auc",
    "toycar5_oracle",
]

#: Fig. 5: 5 %, 10 %, ..., 100 % of the test clips.
FIG5_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(1, 21))


def _err(message: str) -> ASDError:
    return ASDError(f"smoothing/protocol.py: {message}")


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def _group_seed(seed: int, *keys) -> np.random.Generator:
    """A generator that depends only on the seed and the group's name (not on the table's order)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32("/".join(map(str, keys)).encode())])


# ----------------------------------------------------------------------------------------- the split
def training_split(table: pd.DataFrame, source_fraction: float = 0.85, n_target: int = 2,
                   seed: int = 0) -> np.ndarray:
    """Which training clips train the models ("fit") and which validate ("val"); paper IV-A.

    Per (part, machine type, section): ``round(source_fraction * n)`` of the n source-domain training clips
    (at least one) and ``min(n_target, m)`` of the m target-domain training clips are drawn at random for
    "fit", the rest are "val". The draw depends on the seed and the section's name only (clips ordered by
    file name first), so it is the same whatever else the table holds.

    Parameters
    ----------
    table : DataFrame
        The clip table (``part, machine_type, unit, domain, split, file``).
    source_fraction : float
        0.85 (paper).
    n_target : int
        2 (paper: "two samples of the target domain data").
    seed : int

    Returns
    -------
    numpy array of str, one per row: "fit", "val", or "" for test clips.
    """
    if not 0.0 < source_fraction <= 1.0:
        raise _err(f"source_fraction must lie in (0, 1], got {source_fraction}")
    if int(n_target) < 0:
        raise _err(f"n_target must be >= 0, got {n_target}")
    out = np.full(len(table), "", dtype=object)
    train = (table["split"] == "train").to_numpy()
    if not train.any():
        raise _err("the clip table has no training clips; check --data-root (dev_data/<type>/train)")
    domain = table["domain"].fillna("").astype(str).replace("", "source").to_numpy()
    columns = [table["part"].astype(str).to_numpy(), table["machine_type"].astype(str).to_numpy(),
               table["unit"].astype(str).to_numpy(), domain]
    files = table["file"].astype(str).to_numpy()
    keys = sorted({tuple(c[i] for c in columns) for i in np.flatnonzero(train)})
    for part, machine_type, unit, dom in keys:
        in_group = train & (columns[0] == part) & (columns[1] == machine_type) & (columns[2] == unit) & (domain == dom)
        positions = np.flatnonzero(in_group)
        positions = positions[np.argsort(files[positions], kind="stable")]
        rng = _group_seed(seed, part, machine_type, unit, dom)
        order = positions[rng.permutation(len(positions))]
        if dom == "target":
            n_fit = min(int(n_target), len(order))
        else:
            n_fit = min(len(order), max(1, _round_half_up(source_fraction * len(order))))
        out[order[:n_fit]] = "fit"
        out[order[n_fit:]] = "val"
    return out.astype(str)


# ------------------------------------------------------------------------------------ the evaluation
def _roc_auc_pauc(y: np.ndarray, s: np.ndarray, max_fpr: float = 0.1) -> tuple[float, float]:
    """AUC and McClish-standardised pAUC (= ``sklearn.metrics.roc_auc_score(y, s[, max_fpr])``).

    The ROC curve's corner points: clips sorted by decreasing score, one point per distinct score (ties
    move both rates at once, i.e. count one half). pAUC: the area up to ``max_fpr`` with the curve
    linearly interpolated there, standardised as ``0.5 (1 + (A - p^2/2) / (p - p^2/2))``.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    auc = float(np.trapezoid(tpr, fpr))
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    x_part = np.r_[fpr[:stop], max_fpr]
    y_part = np.r_[tpr[:stop], np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1])]
    partial = float(np.trapezoid(y_part, x_part))
    low, high = 0.5 * max_fpr ** 2, max_fpr
    return auc, float(0.5 * (1.0 + (partial - low) / (high - low)))


def _hmean(values) -> float:
    v = np.maximum(np.asarray(values, dtype=float).ravel(), EPS)
    return float(v.size / np.sum(1.0 / v))


class UnitEvaluator:
    """AUC/pAUC of many score vectors over the same labelled test clips, per DCASE 2021 unit.

    Units are (machine type, section, domain) as in the DCASE 2021 evaluator
    (:func:`asdcore.metrics.evaluate_clips` gives the same numbers, tested).

    Parameters
    ----------
    table : DataFrame
        Rows to evaluate (all labelled "normal"/"anomaly"; e.g. the dev or eval test clips).
    """

    def __init__(self, table: pd.DataFrame):
        labels = table["label"].astype(str).to_numpy()
        if not np.isin(labels, ["normal", "anomaly"]).all():
            raise _err("UnitEvaluator needs labelled test clips (normal/anomaly); give --ground-truth for eval")
        self.y = labels == "anomaly"
        keys = pd.DataFrame({"machine_type": table["machine_type"].astype(str).to_numpy(),
                             "unit": table["unit"].astype(str).to_numpy(),
                             "domain": table["domain"].fillna("").astype(str).to_numpy()})
        groups = keys.groupby(["machine_type", "unit", "domain"], sort=True).indices
        self.units = pd.DataFrame(list(groups.keys()), columns=["machine_type", "unit", "domain"])
        self.rows = [np.asarray(v) for v in groups.values()]
        for (t, u, d), r in zip(groups.keys(), self.rows):
            if self.y[r].all() or not self.y[r].any():
                raise _err(f"{t} {u} {d}: needs normal and anomalous test clips to compute an AUC")
        self.machine_types = sorted(self.units["machine_type"].unique())
        self._type_units = {t: np.flatnonzero(self.units["machine_type"].to_numpy() == t)
                            for t in self.machine_types}

    def __len__(self):
        return len(self.y)

    def unit_values(self, scores) -> np.ndarray:
        """``[n_units, 2]``: AUC and pAUC of each unit (rows of :attr:`units`)."""
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != self.y.shape:
            raise _err(f"{s.shape} scores for {self.y.shape[0]} evaluated clips")
        if not np.all(np.isfinite(s)):
            raise _err("non-finite scores among the evaluated clips")
        return np.array([_roc_auc_pauc(self.y[r], s[r]) for r in self.rows])

    def type_scores(self, values: np.ndarray) -> dict:
        """Table II's statistic from :meth:`unit_values`: per machine type the harmonic mean of all its
        AUC and pAUC values (sections and domains), and under "all" the same over every unit."""
        out = {t: _hmean(values[idx]) for t, idx in self._type_units.items()}
        out["all"] = _hmean(values)
        return out

    def score(self, scores) -> dict:
        return self.type_scores(self.unit_values(scores))


# ------------------------------------------------------------------------------------ the smoothing
def k_grid(k_min: int = 2, k_max: int = 2048) -> list[int]:
    """Powers of two from ``k_min`` to ``k_max`` (Table I selects K from 64 to 2048)."""
    if int(k_min) < 1 or int(k_max) < int(k_min):
        raise _err(f"need 1 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    ks, k = [], 1
    while k <= k_max:
        if k >= k_min:
            ks.append(k)
        k *= 2
    if not ks:
        raise _err(f"no power of two between k_min={k_min} and k_max={k_max}")
    return ks


def pool_sizes(domains, pools) -> pd.DataFrame:
    """Items per smoothing pool: ``pool, all, source`` (the candidates of Table I's "All" and "Source")."""
    frame = pd.DataFrame({"pool": np.asarray(pools).astype(str),
                          "source": np.asarray(domains).astype(str) == "source"})
    return (frame.groupby("pool", sort=True)["source"].agg(all="size", source="sum")
            .reset_index().astype({"all": int, "source": int}))


def saturated_settings(domains, pools, ks, datas=("source", "all"), groups=None) -> dict:
    """Which (data, K) are saturated: in every pool, the K-1 neighbours of eq. (7) of every item are all
    of its candidates, so a larger K changes nothing and a_prop no longer depends on the neighbourhood.

    An item's candidates are the other items of its pool ("all") or the source items of its pool other
    than itself ("source"); with ``groups`` (e.g. each segment's clip) the items of its own group are not
    candidates either. Saturated iff ``K - 1 >=`` the largest candidate count of any item, in every pool.

    Returns
    -------
    {(data, k): bool}
    """
    domains, pools = np.asarray(domains).astype(str), np.asarray(pools).astype(str)
    own = np.arange(len(pools)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    most = {}
    for data in datas:
        candidate = np.ones(len(pools), bool) if data == "all" else domains == "source"
        largest = []
        for pool in np.unique(pools):
            rows = pools == pool
            in_own = np.bincount(own[rows], weights=candidate[rows], minlength=own.max() + 1)[own[rows]]
            largest.append(int(candidate[rows].sum() - in_own.min()))
        most[data] = np.array(largest)
    return {(data, int(k)): bool(np.all(int(k) - 1 >= most[data])) for data in datas for k in ks}


def smooth_grid(features, scores, domains, pools, clip_index, n_clips, ks, datas=("source", "all"),
                metric="cosine", clip_mask=None, exclude="clip") -> dict:
    """a_prop (eq. 7) for every (data, K), smoothed within each pool, averaged per clip.

    Items are clips or 4 s segments (``clip_index`` maps each item to its clip).

    Parameters
    ----------
    features : array (items, dim)
        f_D of each item.
    scores : array (items,)
        a_G of each item.
    domains : array of str (items,)
    pools : array (items,)
        Items smooth each other only within a pool (e.g. "fan/section_03").
    clip_index : int array (items,), n_clips : int
    ks : list of int
    datas : {"source", "all"} choices (Table I, "Data").
    metric : str
        See :class:`smoothing.knn.NeighbourhoodSmoother`.
    clip_mask : bool array (n_clips,), optional
        Only these clips are observed (Fig. 5); the others get NaN.
    exclude : {"clip", "item"}
        What eq. (7)'s "except for i" leaves out of an item's neighbours: every item of its clip
        (default: the observed sound is the clip, whose seven overlapping segments would otherwise be
        each other's nearest neighbours) or only the item itself.

    Returns
    -------
    {(data, k): array (n_clips,)}: a_prop of each clip (mean over its items), NaN for clips not observed.
    """
    from smoothing.knn import NeighbourhoodSmoother

    features = np.asarray(features, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    domains = np.asarray(domains).astype(str)
    pools = np.asarray(pools).astype(str)
    clip_index = np.asarray(clip_index, dtype=np.int64)
    observed = np.ones(len(scores), bool) if clip_mask is None else np.asarray(clip_mask, bool)[clip_index]
    sums = {(d, k): np.zeros(n_clips) for d in datas for k in ks}
    counts = np.bincount(clip_index[observed], minlength=n_clips).astype(float)
    for pool in np.unique(pools[observed]):
        rows = np.flatnonzero(observed & (pools == pool))
        for data in datas:
            smoother = NeighbourhoodSmoother(1, metric=metric, domain=data)
            smoother.add(features[rows], scores[rows], domains[rows],
                         clip_index[rows] if exclude == "clip" else None)
            for k, values in smoother.smoothed_many(ks).items():
                sums[(data, k)] += np.bincount(clip_index[rows], weights=values, minlength=n_clips)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {key: np.where(counts > 0, total / np.maximum(counts, 1), np.nan) for key, total in sums.items()}


# ------------------------------------------------------------------------------------- the selection
def grid_table(evaluators: dict, scores_by_setting: dict, names: tuple, rows_of: dict) -> pd.DataFrame:
    """Table II's statistic of every setting on every part.

    Parameters
    ----------
    evaluators : {part: UnitEvaluator}
    scores_by_setting : {setting tuple: scores array over the whole clip table}
    names : tuple of str
        Names of the setting tuple's entries (e.g. ("data", "k")).
    rows_of : {part: int array}
        Rows of the clip table each evaluator covers.

    Returns
    -------
    DataFrame with columns ``part, *names, machine_type, score`` (score in [0, 1]; machine type "all" =
    All-hmean), one row per (part, setting, machine type), settings in the given order.
    """
    records = []
    for part, evaluator in evaluators.items():
        for setting, scores in scores_by_setting.items():
            values = evaluator.score(np.asarray(scores)[rows_of[part]])
            for machine_type, value in values.items():
                records.append({"part": part, **dict(zip(names, setting)), "machine_type": machine_type,
                                "score": value})
    return pd.DataFrame(records)


def select_best(grid: pd.DataFrame, names: tuple, part: str) -> pd.DataFrame:
    """Per machine type the setting with the highest score on ``part`` (ties: the one listed first).

    Returns a DataFrame ``machine_type, *names, score`` (machine type "all" excluded), sorted by type.
    """
    rows = grid[(grid["part"] == part) & (grid["machine_type"] != "all")]
    if rows.empty:
        raise _err(f"no grid results on the {part} sections to select from")
    best = rows.sort_values("score", ascending=False, kind="stable").drop_duplicates("machine_type")
    return best[["machine_type", *names, "score"]].sort_values("machine_type").reset_index(drop=True)


def fill_unseen_types(choice: pd.DataFrame, grid: pd.DataFrame, names: tuple, part: str, machine_types) -> pd.DataFrame:
    """Add a choice for every machine type with no ``part`` sections: the setting best on ``part`` over all
    types together (the grid's machine type "all"). Named adaptation "unseen types: pooled choice" for the
    DCASE 2023-2025 evaluation-only types, which have no development sections to choose on (docs/later-dcase.md).
    """
    missing = sorted(set(np.asarray(machine_types).astype(str)) - set(choice["machine_type"]))
    if not missing:
        return choice
    pooled = grid[(grid["part"] == part) & (grid["machine_type"] == "all")]
    if pooled.empty:
        raise _err(f"no pooled grid results on the {part} sections to choose for {', '.join(missing)}")
    best = pooled.sort_values("score", ascending=False, kind="stable").iloc[0]
    extra = pd.DataFrame([{"machine_type": t, **{n: best[n] for n in names}, "score": np.nan} for t in missing])
    return pd.concat([choice, extra], ignore_index=True).sort_values("machine_type").reset_index(drop=True)


def compose(machine_types, choice: pd.DataFrame, scores_by_setting: dict, names: tuple) -> np.ndarray:
    """One system from per-type choices: each row gets the scores of its machine type's chosen setting.

    Rows of machine types without a choice get NaN.
    """
    machine_types = np.asarray(machine_types).astype(str)
    first = next(iter(scores_by_setting.values()))
    out = np.full(len(np.asarray(first)), np.nan)
    for _, row in choice.iterrows():
        setting = tuple(row[n] for n in names)
        if setting not in scores_by_setting:
            setting = tuple(_as_setting_value(v) for v in setting)
        rows = machine_types == row["machine_type"]
        out[rows] = np.asarray(scores_by_setting[setting])[rows]
    return out


def _as_setting_value(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


# ------------------------------------------------------------------------------------------- Fig. 5
def fraction_draw(strata, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random subset keeping every stratum's share: ``max(1, round(fraction * n))`` of each stratum.

    Parameters
    ----------
    strata : array (n,)
        One key per clip, e.g. "fan/section_03/source/anomaly" (Fig. 5 keeps the ratio of normal to
        anomalous and of source to target clips in each section).
    fraction : float in (0, 1]
    rng : numpy Generator

    Returns
    -------
    bool mask (n,).
    """
    if not 0.0 < fraction <= 1.0:
        raise _err(f"fraction must lie in (0, 1], got {fraction}")
    strata = np.asarray(strata).astype(str)
    mask = np.zeros(len(strata), dtype=bool)
    for key in np.unique(strata):
        rows = np.flatnonzero(strata == key)
        take = min(len(rows), max(1, _round_half_up(fraction * len(rows))))
        mask[rng.choice(rows, size=take, replace=False)] = True
    return mask


def fraction_curve(table: pd.DataFrame, features, scores, domains, pools, clip_index, ks, datas,
                   fractions=FIG5_FRACTIONS, n_draws: int = 20, seed: int = 0, metric: str = "cosine",
                   selection: str = "per_fraction", oracle: pd.DataFrame | None = None,
                   generative=None, progress=None, exclude: str = "clip") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 5: a_prop with only a fraction of the test clips observed, ``n_draws`` random draws each.

    Parameters
    ----------
    table : DataFrame
        The labelled test clips smoothed and evaluated (e.g. sections 03-05); ``clip_index`` refers to its
        rows.
    features, scores, domains, pools, clip_index, ks, datas, metric :
        As :func:`smooth_grid` (items = clips or segments of ``table``'s clips).
    fractions : floats in (0, 1]
    n_draws : int
        20 (Fig. 5).
    selection : {"per_fraction", "oracle"}
        Which (data, K) per machine type: the best mean over the draws of each fraction, or ``oracle``'s
        (a :func:`select_best` frame, e.g. chosen on the full test set).
    generative : array (len(table),), optional
        a_G per clip: also evaluated on every draw (the reference line of the plot).
    exclude : {"clip", "item"}
        As :func:`smooth_grid`.

    Returns
    -------
    curve : DataFrame ``fraction, system, machine_type, mean, std, n_draws`` (+ ``data, k`` of the choice and
        ``saturated_draws``: in how many draws that (data, K) saturated the type's pools, like Table I's flag;
        a smaller fraction leaves fewer candidates, so a K that is a real choice on the full test set can
        saturate here): Table II's statistic (harmonic mean of AUC and pAUC, in [0, 1]) per machine type
        and "all".
    draws : DataFrame ``fraction, draw, data, k, machine_type, score, saturated`` for every setting (the raw
        runs; ``saturated`` is empty for "all").
    """
    if selection not in ("per_fraction", "oracle"):
        raise _err(f"selection must be 'per_fraction' or 'oracle', got {selection!r}")
    if selection == "oracle" and oracle is None:
        raise _err("selection='oracle' needs the oracle choice (select_best on the full test set)")
    strata = (table["machine_type"].astype(str) + "/" + table["unit"].astype(str) + "/"
              + table["domain"].fillna("").astype(str) + "/" + table["label"].astype(str)).to_numpy()
    n_clips = len(table)
    settings = [(d, k) for d in datas for k in ks]
    raw, curve = [], []
    for f_idx, fraction in enumerate(fractions):
        unit_values = {s: [] for s in settings}  # per draw: (evaluator units, values)
        gen_values = []
        evaluators = []
        for draw in range(int(n_draws)):
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, f_idx, draw])
            mask = fraction_draw(strata, fraction, rng)
            evaluator = UnitEvaluator(table[mask])
            evaluators.append(evaluator)
            smoothed = smooth_grid(features, scores, domains, pools, clip_index, n_clips, ks, datas, metric,
                                   clip_mask=mask, exclude=exclude)
            seen = mask[clip_index]
            saturated = saturation_frame(table[mask].reset_index(drop=True), domains[seen], pools[seen],
                                         np.cumsum(mask)[clip_index[seen]] - 1, ks, datas, exclude)
            flags = {(r.machine_type, r.data, int(r.k)): bool(r.saturated) for r in saturated.itertuples()}
            for setting in settings:
                values = evaluator.unit_values(smoothed[setting][mask])
                unit_values[setting].append(values)
                for machine_type, value in evaluator.type_scores(values).items():
                    raw.append({"fraction": fraction, "draw": draw, "data": setting[0], "k": setting[1],
                                "machine_type": machine_type, "score": value,
                                "saturated": flags.get((machine_type, setting[0], setting[1]))})
            if generative is not None:
                gen_values.append(evaluator.unit_values(np.asarray(generative)[mask]))
            if progress is not None:
                progress(fraction, draw)
        types = evaluators[0].machine_types
        frame = pd.DataFrame([r for r in raw if r["fraction"] == fraction and r["machine_type"] != "all"])
        if selection == "per_fraction":
            means = frame.groupby(["data", "k", "machine_type"], sort=False)["score"].mean().reset_index()
            order = {s: i for i, s in enumerate(settings)}
            means["_order"] = [order[(d, k)] for d, k in zip(means["data"], means["k"])]
            means = means.sort_values(["_order"], kind="stable")
            chosen = means.sort_values("score", ascending=False, kind="stable").drop_duplicates("machine_type")
            choice = {r.machine_type: (r.data, int(r.k)) for r in chosen.itertuples()}
        else:
            choice = {r.machine_type: (r.data, int(r.k)) for r in oracle.itertuples()}
        per_draw = {t: [] for t in types + ["all"]}
        for draw, evaluator in enumerate(evaluators):
            combined = np.empty((len(evaluator.units), 2))
            for t in types:
                idx = evaluator._type_units[t]
                combined[idx] = unit_values[choice[t]][draw][idx]
            for t, value in evaluator.type_scores(combined).items():
                per_draw[t].append(value)
        for t, values in per_draw.items():
            chosen_rows = [frame[(frame["machine_type"] == u) & (frame["data"] == choice[u][0])
                                 & (frame["k"] == choice[u][1])] for u in (types if t == "all" else [t])]
            flagged = np.all([r.sort_values("draw")["saturated"].astype(bool).to_numpy() for r in chosen_rows], axis=0)
            n_saturated = int(flagged.sum())  # draws in which the chosen setting(s) saturated
            curve.append({"fraction": fraction, "system": "Proposed", "machine_type": t,
                          "mean": float(np.mean(values)), "std": float(np.std(values)), "n_draws": len(values),
                          "data": choice[t][0] if t != "all" else "", "k": choice[t][1] if t != "all" else 0,
                          "saturated_draws": n_saturated})
        if generative is not None:
            per_draw = {t: [] for t in types + ["all"]}
            for evaluator, values in zip(evaluators, gen_values):
                for t, value in evaluator.type_scores(values).items():
                    per_draw[t].append(value)
            for t, values in per_draw.items():
                curve.append({"fraction": fraction, "system": "generative", "machine_type": t,
                              "mean": float(np.mean(values)), "std": float(np.std(values)),
                              "n_draws": len(values), "data": "", "k": 1})
    return pd.DataFrame(curve), pd.DataFrame(raw)


# ------------------------------------------------------------------------------ items, saturation, ToyCar-5
def smoothing_items(table: pd.DataFrame, emb, gen_clip, gen_seg, rows, pool: str = "section",
                    level: str = "segment"):
    """The items smoothed together (clips or their 4 s crops) of the clip-table rows ``rows``:
    ``(features, scores, domains, pools, clip_index)``. ``pool``: "section" (machine type and section) or
    "machine_type" (machine type and part); ``level``: "segment" (every crop of ``emb`` / ``gen_seg``) or
    "clip" (the mean f_D over the crops and ``gen_clip``)."""
    sub = table[rows]
    n = len(sub)
    domains = sub["domain"].astype(str).to_numpy()
    if pool == "section":
        pools = (sub["machine_type"] + "/" + sub["unit"]).to_numpy()
    else:
        pools = (sub["machine_type"] + "/" + sub["part"]).to_numpy()
    if level == "clip":
        return emb[rows].mean(axis=1), gen_clip[rows], domains, pools, np.arange(n)
    s = emb.shape[1]
    return (emb[rows].reshape(n * s, -1), gen_seg[rows].reshape(-1), np.repeat(domains, s), np.repeat(pools, s),
            np.repeat(np.arange(n), s))


def saturation_frame(test_table, domains, pools, clip_index, ks, datas, exclude="clip") -> pd.DataFrame:
    """Per (part, machine type, data, K) whether K saturates every smoothing pool of that part and type
    (:func:`saturated_settings`; items are mapped to their clip's part and type; ``exclude="clip"``: an
    item's own clip is not among its candidates, as in :func:`smooth_grid`)."""
    parts = test_table["part"].astype(str).to_numpy()[clip_index]
    types = test_table["machine_type"].astype(str).to_numpy()[clip_index]
    groups = np.asarray(clip_index) if exclude == "clip" else None
    records = []
    for part, machine_type in sorted(set(zip(parts, types))):
        rows = (parts == part) & (types == machine_type)
        for (data, k), value in saturated_settings(domains[rows], pools[rows], ks, datas,
                                                   None if groups is None else groups[rows]).items():
            records.append({"part": part, "machine_type": machine_type, "data": data, "k": k, "saturated": value})
    return pd.DataFrame(records, columns=["part", "machine_type", "data", "k", "saturated"])


def with_saturation(selection: pd.DataFrame, saturated: pd.DataFrame) -> pd.DataFrame:
    """``selection`` (every setting's score) with a ``saturated`` column: True/False for Proposed rows, empty
    for SerialOE; an "all" row is saturated when it is for every machine type of its part."""
    keys = saturated.assign(k=saturated["k"].astype("Int64"), system="Proposed")
    out = selection.merge(keys, on=["system", "part", "machine_type", "data", "k"], how="left")
    all_rows = (out["system"] == "Proposed") & (out["machine_type"] == "all")
    if all_rows.any():
        every = saturated.groupby(["part", "data", "k"])["saturated"].all().rename("every").reset_index()
        every["k"] = every["k"].astype("Int64")
        out.loc[all_rows, "saturated"] = out[all_rows].merge(every, on=["part", "data", "k"],
                                                             how="left")["every"].to_numpy()
    out["saturated"] = out["saturated"].astype("boolean")
    return out


def toycar5_auc(table: pd.DataFrame, scores) -> float:
    """AUC (%) of ToyCar section 05 (Table II "ToyCar-5"): both domains' test clips together (the paper does
    not say whether it pooled the domains); NaN without both labels there."""
    from asdcore.metrics import auc

    rows = ((table["machine_type"] == "ToyCar") & (table["unit"] == "section_05") & (table["split"] == "test")
            & table["label"].isin(["normal", "anomaly"])).to_numpy()
    if not rows.any() or table.loc[rows, "label"].nunique() < 2:
        return np.nan
    return 100 * auc(table.loc[rows, "label"].to_numpy(), np.asarray(scores)[rows])


def toycar5_oracle(table: pd.DataFrame, grid: dict) -> dict | None:
    """The Oracle's ToyCar-5 (Table II note: "Hyperparameters of Proposed (Oracle) on the ToyCar-5 are 128
    for K and All for Data"): the (data, K) of ``grid`` with the highest AUC of ToyCar section 05 itself,
    ties to the setting listed first. ``{"data", "k", "auc"}`` (AUC in %) or None without ToyCar section 05."""
    best = None
    for (data, k), scores in grid.items():
        value = toycar5_auc(table, scores)
        if np.isfinite(value) and (best is None or value > best["auc"]):
            best = {"data": data, "k": int(k), "auc": float(value)}
    return best


def _log_saturation(log, saturated, sizes, protocol):
    """One log line: the pool sizes and, per data choice, the K from which every pool is saturated."""
    first = {}
    for data in protocol.datas:
        rows = saturated[(saturated["data"] == data) & saturated["saturated"]]
        n_groups = saturated[saturated["data"] == data].groupby(["part", "machine_type"]).ngroups
        full = [int(k) for k, n in rows.groupby("k").size().items() if n == n_groups]
        first[data] = f"K >= {min(full)}" if full else "none"
    log.info("smoothing pools (%s, level %s): %d pools of %d-%d items (%d-%d source); saturated K (a_prop "
             "no longer depends on the neighbourhood; reported, not a tuned choice): %s", protocol.pool, protocol.level,
             len(sizes), sizes["all"].min(), sizes["all"].max(), sizes["source"].min(), sizes["source"].max(),
             ", ".join(f"{data}: {text}" for data, text in first.items()))
