"""Embedding maps: the test clips' embeddings of each machine type in two dimensions (issue 14).

One PNG per machine type (``plots/embeddings/<machine type>.png``): every test clip one point, coloured by
its machine ID / section, filled when normal and hollow when anomalous, a circle for the source domain (and
every DCASE 2020 clip) and a triangle for the target domain; learned centres (sub-cluster AdaCos's
sub-cluster weight vectors, DDCSAD's c_p and c_n) as large markers coloured by their class. A map shows at a
glance whether a network learned anything: the IDs / sections form separate groups and the anomalous clips
lie away from the normal ones of their ID.

Projection (:func:`project`): PCA (default; scikit-learn), fitted on the embeddings of one panel; the
centres are mapped with that same fitted PCA, so they sit where the embeddings' map puts them. t-SNE
(``projection="tsne"``) has no map for new points, so it is fitted on the embeddings and the centres
jointly. Embeddings of cosine heads (sub-cluster AdaCos, SerialOE's neighbourhood) are shown L2-normalised
(``normalise=True``; the figure says so): the direction is what the head and the cosine back-ends see.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.report import save_figure

__all__ = ["PROJECTIONS", "project", "plot_embedding_maps", "test_clip_rows", "write_run_maps"]

PROJECTIONS = ("pca", "tsne")
#: marker of a centre kind (anything else: a diamond)
CENTRE_MARKERS = {"centre": "*", "c_p": "P", "c_n": "X"}
CENTRE_NAMES = {"centre": "learned centre", "c_p": "c_p (normal centroid)", "c_n": "c_n (outlier centroid)"}
DOMAIN_MARKERS = {"source": "o", "target": "^"}


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def project(embeddings, centres=None, projection: str = "pca", normalise: bool = True, seed: int = 0):
    """2-D coordinates of ``embeddings`` (n, D) and of ``centres`` (m, D) in the same map.

    Parameters
    ----------
    projection : "pca": scikit-learn's PCA fitted on the embeddings only, the centres transformed with it;
        "tsne": scikit-learn's t-SNE (PCA initialisation, perplexity min(30, (n + m - 1) / 3)) on the
        embeddings and the centres together.
    normalise : L2-normalise every vector first (embeddings of cosine heads).

    Returns
    -------
    points : (n, 2); centre_points : (m, 2) (empty without centres); axis_labels : two strings (PCA: the
    share of the embeddings' variance of each component).
    """
    if projection not in PROJECTIONS:
        raise ASDError(f"embedding maps: projection {projection!r} is unknown; use one of {', '.join(PROJECTIONS)}")
    x = np.asarray(embeddings, dtype=np.float64)
    c = np.zeros((0, x.shape[1] if x.ndim == 2 else 0)) if centres is None else np.asarray(centres, np.float64)
    if x.ndim != 2 or c.ndim != 2 or (len(c) and c.shape[1] != x.shape[1]):
        raise ASDError(f"embedding maps: embeddings {x.shape} and centres {c.shape} must be (n, D) and (m, D)")
    if not (np.isfinite(x).all() and np.isfinite(c).all()):
        raise ASDError("embedding maps: non-finite embeddings or centres (a diverged network); nothing to draw")
    if normalise:
        x, c = _l2(x), (_l2(c) if len(c) else c)
    n, m = len(x), len(c)
    if projection == "tsne" and n + m > 3:
        from sklearn.manifold import TSNE

        joint = np.concatenate([x, c])
        tsne = TSNE(n_components=2, perplexity=min(30.0, (n + m - 1) / 3), init="pca", random_state=seed)
        both = tsne.fit_transform(joint)
        return both[:n], both[n:], ("t-SNE 1", "t-SNE 2")
    from sklearn.decomposition import PCA

    k = min(2, n, x.shape[1])
    points, centre_points = np.zeros((n, 2)), np.zeros((m, 2))
    labels = ["PC 1", "PC 2"]
    if k >= 1 and n >= 2:
        pca = PCA(n_components=k, random_state=seed).fit(x)
        points[:, :k] = pca.transform(x)
        if m:
            centre_points[:, :k] = pca.transform(c)
        labels = [f"PC {i + 1} ({100 * r:.0f} % of the variance)" for i, r in enumerate(pca.explained_variance_ratio_)]
        if len(labels) < 2:
            labels.append("PC 2")
    return points, centre_points, tuple(labels)


def test_clip_rows(table: pd.DataFrame) -> np.ndarray:
    """Positions of the test clips of a clip table (``split == "test"``): the clips every map shows."""
    return np.flatnonzero((table["split"].astype(str) == "test").to_numpy())


test_clip_rows.__test__ = False  # a helper, not a pytest test


def _unit_label(unit: str, unit_name: str) -> str:
    """``"id_03"`` -> ``"ID 03"`` with ``unit_name="ID"``; the unit itself without a name."""
    return f"{unit_name} {unit.split('_')[-1]}" if unit_name else unit


def _colours(units):
    import matplotlib

    palette = matplotlib.colormaps["tab10" if len(units) <= 10 else "tab20"]
    return {u: palette(i % palette.N) for i, u in enumerate(units)}


def _draw_panel(ax, points, rows, centre_points, centre_rows, colours, axis_labels, title):
    domains = rows["domain"].fillna("").astype(str).to_numpy() if "domain" in rows else np.full(len(rows), "")
    labels = rows["label"].astype(str).to_numpy()
    units = rows["unit"].astype(str).to_numpy()
    for domain in sorted(set(domains)):
        marker = DOMAIN_MARKERS.get(domain, "o")
        for label in ("normal", "unknown", "anomaly"):
            for unit in sorted(set(units)):
                hit = (domains == domain) & (labels == label) & (units == unit)
                if not hit.any():
                    continue
                colour = colours[unit]
                if label == "anomaly":
                    ax.scatter(*points[hit].T, s=26, marker=marker, facecolors="none", edgecolors=[colour],
                               linewidths=1.1, zorder=3)
                else:  # normal; unlabelled (eval without ground truth) lighter
                    ax.scatter(*points[hit].T, s=22, marker=marker, c=[colour], alpha=0.85 if label == "normal"
                               else 0.35, linewidths=0, zorder=2)
    if centre_rows is not None and len(centre_rows):
        kinds = centre_rows["kind"].astype(str).to_numpy()
        for i, (kind, unit) in enumerate(zip(kinds, centre_rows["unit"].astype(str))):
            ax.scatter(*centre_points[i], s=190 if kind == "centre" else 130, marker=CENTRE_MARKERS.get(kind, "D"),
                       c=[colours.get(unit, "black")], edgecolors="black", linewidths=0.9, zorder=4)
    ax.set_xlabel(axis_labels[0], fontsize=8)
    ax.set_ylabel(axis_labels[1], fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)
    if title:
        ax.set_title(title, fontsize=9)


def _legend(ax, units, colours, unit_name, domains, labels, centre_kinds):
    from matplotlib.lines import Line2D

    def dot(colour, marker="o", filled=True, size=7, **kw):
        return Line2D([], [], ls="", marker=marker, ms=size, markerfacecolor=colour if filled else "none",
                      markeredgecolor=kw.pop("edge", colour), **kw)

    handles = [dot(colours[u]) for u in units]
    names = [_unit_label(u, unit_name) for u in units]
    handles.append(dot("grey"))
    names.append("normal (filled)")
    if "anomaly" in labels:
        handles.append(dot("grey", filled=False, markeredgewidth=1.3))
        names.append("anomalous (hollow)")
    if "unknown" in labels:
        handles.append(dot((0.5, 0.5, 0.5, 0.35)))
        names.append("unlabelled (light)")
    if {"source", "target"} & set(domains):
        for domain in ("source", "target"):
            handles.append(dot("white", DOMAIN_MARKERS[domain], edge="black"))
            names.append(f"{domain} domain")
    for kind in centre_kinds:
        handles.append(dot("lightgrey", CENTRE_MARKERS.get(kind, "D"), size=11 if kind == "centre" else 9,
                           edge="black"))
        names.append(CENTRE_NAMES.get(kind, kind))
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False,
              borderaxespad=0.0)


def plot_embedding_maps(embeddings, rows: pd.DataFrame, out_dir, *, centres=None, centre_rows=None,
                        panel_column: str | None = None, projection: str = "pca", normalise: bool = True,
                        title: str = "", unit_name: str = "", seed: int = 0) -> list[Path]:
    """One PNG per machine type of ``rows``: the 2-D map of its clips' embeddings (``<out_dir>/<type>.png``).

    Parameters
    ----------
    embeddings : (n, D), aligned with ``rows``.
    rows : the clip-table rows of the embeddings (``machine_type``, ``unit``, ``label``, ``domain``; with a
        ``split`` column only the test clips are drawn).
    centres, centre_rows : optional (m, D) vectors in the embeddings' space and a frame with ``machine_type``,
        ``unit`` (the class: the centre's colour) and ``kind`` ("centre", "c_p", "c_n"), plus
        ``panel_column`` when given. A machine type's figure shows the centres of its classes.
    panel_column : a column of ``rows`` (e.g. "unit"): one panel, with its own projection, per value (the
        DDCSAD models, one per machine ID, embed into different spaces). Default: one panel per type.
    projection, normalise, seed : see :func:`project`.
    title : first title line (which network / model); the projection is added.
    unit_name : legend name of a unit ("ID", "section"); default the unit labels themselves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    embeddings = np.asarray(embeddings)
    rows = rows.reset_index(drop=True)
    if len(embeddings) != len(rows):
        raise ASDError(f"embedding maps: {len(embeddings)} embeddings for {len(rows)} clip-table rows")
    missing = {"machine_type", "unit", "label"} - set(rows.columns)
    if missing:
        raise ASDError(f"embedding maps: the clip rows lack the column(s) {sorted(missing)}")
    if "split" in rows:
        keep = test_clip_rows(rows)
        embeddings, rows = embeddings[keep], rows.iloc[keep].reset_index(drop=True)
    if centres is not None:
        centres = np.asarray(centres)
        if centre_rows is None or len(centre_rows) != len(centres):
            raise ASDError("embedding maps: give centre_rows (machine_type, unit, kind) with one row per centre")
        centre_rows = centre_rows.reset_index(drop=True)
    how = {"pca": "PCA", "tsne": "t-SNE"}.get(projection, projection)
    space = "L2-normalised embeddings" if normalise else "embeddings"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for machine_type in sorted(rows["machine_type"].astype(str).unique()):
        of_type = (rows["machine_type"].astype(str) == machine_type).to_numpy()
        type_rows = rows[of_type].reset_index(drop=True)
        units = sorted(type_rows["unit"].astype(str).unique())
        colours = _colours(units)
        panels = [None] if panel_column is None else sorted(type_rows[panel_column].astype(str).unique())
        n_cols = min(len(panels), 3)
        n_rows = int(np.ceil(len(panels) / n_cols))
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.6 * n_cols + 1.9, 4.0 * n_rows + 0.7), squeeze=False)
        kinds = []
        for ax, panel in zip(axes.ravel(), panels):
            here = np.ones(len(type_rows), bool) if panel is None else \
                (type_rows[panel_column].astype(str) == panel).to_numpy()
            c_here, c_rows = None, None
            if centres is not None:
                c_mask = (centre_rows["machine_type"].astype(str) == machine_type).to_numpy()
                if panel is not None:
                    c_mask = c_mask & (centre_rows[panel_column].astype(str) == panel).to_numpy()
                c_here, c_rows = centres[c_mask], centre_rows[c_mask]
                kinds = list(dict.fromkeys(kinds + list(c_rows["kind"].astype(str))))
            points, c_points, axis_labels = project(embeddings[of_type][here], c_here, projection, normalise, seed)
            _draw_panel(ax, points, type_rows[here], c_points, c_rows, colours, axis_labels,
                        "" if panel is None else _unit_label(panel, unit_name))
        for ax in axes.ravel()[len(panels):]:
            ax.axis("off")
        _legend(axes[0, -1], units, colours, unit_name,
                set(type_rows.get("domain", pd.Series(dtype=str)).fillna("").astype(str)),
                set(type_rows["label"].astype(str)), kinds)
        heading = f"{title}\n" if title else ""
        fig.suptitle(f"{heading}{machine_type}: {len(type_rows)} test clips, {how} of the {space}", fontsize=9)
        written.append(save_figure(fig, out_dir / f"{machine_type}.png", bbox_inches="tight"))
    return written


def write_run_maps(ctx, embeddings, rows: pd.DataFrame, title: str, **options) -> list[Path]:
    """:func:`plot_embedding_maps` into a run's ``plots/embeddings/`` with the run's ``--embedding-maps``
    projection (nothing for "none") and seed; the title says the run's data and mode (``ctx.tag``)."""
    projection = getattr(ctx.args, "embedding_maps", "pca")
    if projection == "none":
        return []
    heading = f"{title}\n{ctx.tag}"
    written = plot_embedding_maps(embeddings, rows, ctx.run.path / "plots" / "embeddings", projection=projection,
                                  seed=ctx.seed, title=heading, **options)
    ctx.log.info("embedding maps (%s): %s", projection, ", ".join(p.name for p in written))
    return written
