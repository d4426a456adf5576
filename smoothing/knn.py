"""Neighbourhood smoothing of generative anomaly scores: a_prop, Fujimura et al., eq. (7).

For the set of observed (test) clips Y of one machine type and section, with discriminative features
F = {f_D(y_j)} and generative scores a_G(y_j),

    a_prop(y_i) = 1/K * ( a_G(y_i) + sum_{k in N_F(y_i)} a_G(y_k) ),                          (7)

where N_F(y_i) holds the indices of the K-1 nearest neighbours of f_D(y_i) in F, i itself excluded
(paper section III). When the items are the 4 s segments of the clips, "i" is read as the observed
*sound*, the clip: optional ``groups`` (one id per item, e.g. its clip) exclude every item of the query's
group from its neighbours, not only the item itself; without them only the item is excluded. The smoothed score is the mean of the clip's own score and those of the clips that
look most alike to the discriminative model.

Choices the paper leaves open, made here and documented:

- **Fewer than K-1 candidates.** When fewer than K-1 clips are available as neighbours (a "saturated"
  K: Table I selects K up to 2048, a section of the real data has about 400 test clips or 2,800 test
  segments), all of them are used and the mean is
  taken over the clips actually used: ``a_prop = (a_G(y_i) + sum of the m neighbours) / (1 + m)`` with
  ``m = min(K-1, number of candidates)``. A large K thus tends to the section mean plus the clip's own
  share, never to a sum divided by a K that does not match the clips summed.
- **Domain restriction** (Table I, column "Data"): ``domain="source"`` takes neighbours only among the
  source-domain clips (for target-domain clips too; their own a_G still counts as the first term);
  ``domain="all"`` uses every observed clip.
- **Ties** in distance are broken by observation order (the earlier clip is nearer), so results do
  not depend on how the clips were batched.
- **Saturation is exact.** When K-1 covers every candidate, eq. (7) sums the same set for every clip
  that is itself a candidate (the clip plus all other candidates = all candidates), so a_prop is the same
  number for all of them (with ``groups``: the item plus every candidate outside its group, one sum per
  group). That sum is computed once (``candidate total / number of candidates``), not
  row by row in each clip's neighbour order: a per-row running sum adds the same values in different
  orders and differs by ~1e-15 from clip to clip, which an AUC reads as a ranking (issue 11: unit AUCs
  of 0.155-0.713 instead of 0.5). A clip that is not a candidate (a target clip with ``domain="source"``)
  adds its own a_G to the candidate total: ``(a_G(y_i) + total) / (1 + candidates)``.
- **Metric.** See :class:`NeighbourhoodSmoother`.

The smoother accepts observations incrementally, as a monitoring system accumulates them (section III:
"the ASD system ... works by regularly updating F"); ``smoothed()`` after several ``add`` calls equals
a batch computation on all clips at once (bit-for-bit: it recomputes from the stored arrays).
"""
from __future__ import annotations

import numpy as np

from asdcore.errors import ASDError

__all__ = ["NeighbourhoodSmoother", "neighbourhood_smooth", "METRICS", "DOMAINS"]

METRICS = ("cosine", "euclidean")
DOMAINS = ("all", "source")

# Distances are computed in row blocks of at most this many matrix entries (bounded memory for large
# monitoring histories: about 3 arrays of this size, 8 bytes each).
_BLOCK_ENTRIES = 1 << 21


def _err(message: str) -> ASDError:
    return ASDError(f"smoothing/knn.py: {message}")


class NeighbourhoodSmoother:
    """a_prop (eq. 7) over the observed clips of ONE machine type and section.

    Parameters
    ----------
    k : int
        K of eq. (7): the clip itself plus K-1 neighbours (K = 1 returns a_G unchanged). Table I uses
        powers of two from 64 to 2048.
    metric : {"cosine", "euclidean"}
        Distance between discriminative features. The paper does not name one. Default "cosine", for
        these reasons (judgement, not a finding of the paper):

        - f_D is read by linear heads g_mac and g_id trained with binary cross-entropies; for the
          section head (no bias in the public SerialOE code) which section wins depends only on the
          direction of the embedding, while its length mostly scales the logits (how confident the
          head is). Neighbours "of the same kind of sound" are therefore best found by direction.
        - The embedding length grows with training and shifts between domains and recording
          conditions, so Euclidean neighbourhoods can be dominated by the length rather than by the
          sound type; the cosine ignores it.
        - Cosine similarity is the usual choice for embeddings of ASD classifiers (e.g. the cosine
          back-ends of Wilkinghoff 2020, Table II).

        The honest counter-argument: with a linear g_mac the norm can carry "how normal" a clip looks
        (the public SerialOE code even feeds the squared norm into g_mac), and that information is
        discarded by the cosine. Hence the option: "euclidean" keeps it.
    domain : {"all", "source"}
        Which observed clips may serve as neighbours (Table I, "Data").

    Attributes
    ----------
    n_observed : int
        Number of clips added so far.

    Notes
    -----
    Complexity: O(n^2 log n) per ``smoothed()`` call (a stable sort of each row of the distance matrix,
    in blocks), which also yields every K at once (:meth:`smoothed_many`).
    """

    def __init__(self, k: int, metric: str = "cosine", domain: str = "all"):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise _err(f"k must be a positive integer (the clip itself + k-1 neighbours), got {k!r}")
        if metric not in METRICS:
            raise _err(f"metric must be one of {METRICS}, got {metric!r}")
        if domain not in DOMAINS:
            raise _err(f"domain must be one of {DOMAINS}, got {domain!r}")
        self.k = int(k)
        self.metric = metric
        self.domain = domain
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._has_domains: bool | None = None
        self._group_chunks: list[np.ndarray] = []  # optional group id per item (e.g. its clip)
        self._dim: int | None = None

    # ------------------------------------------------------------------ state
    @property
    def n_observed(self) -> int:
        return sum(len(s) for _, s, _ in self._chunks)

    def _check(self, features, scores, domains, what):
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2:
            raise _err(f"{what} features must be 2-D (clips, dims), got shape {X.shape}; pass one row per clip")
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1 or len(s) != len(X):
            raise _err(f"{what} scores must be 1-D with one value per feature row ({len(X)}), got shape {s.shape}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(s))):
            raise _err(f"{what} features or scores contain NaN or infinite values; drop or fix those clips")
        if self._dim is not None and X.shape[1] != self._dim:
            raise _err(f"{what} features have {X.shape[1]} dimensions, earlier ones {self._dim}; use one f_D")
        if domains is not None:
            d = np.asarray(domains).astype(str)
            if d.shape != (len(X),):
                raise _err(f"{what} domains must be 1-D with one entry per clip ({len(X)}), got shape {d.shape}")
        else:
            d = None
            if self.domain == "source":
                raise _err("domain='source' needs the domain of every clip; pass domains=... or use domain='all'")
        return X, s, d

    def _prepare(self, X):
        """Rows as they enter the distance: unit length for cosine (zero rows stay zero)."""
        if self.metric == "cosine":
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            return X / np.maximum(norms, 1e-12)
        return X

    def add(self, features, scores, domains=None, groups=None) -> "NeighbourhoodSmoother":
        """Observe more clips.

        Parameters
        ----------
        features : array (n, dim)
            f_D of each clip (one vector per clip, e.g. the mean over its 4 s segments).
        scores : array (n,)
            a_G of each clip.
        domains : array of str (n,), optional
            "source" / "target" per clip; required when ``domain="source"``. Give it for every batch or
            for none.
        groups : array (n,), optional
            A group id per item (e.g. the clip a 4 s segment belongs to): items of the query's group are
            not its neighbours. Give it for every batch or for none.
        """
        X, s, d = self._check(features, scores, domains, "added")
        if groups is not None and np.asarray(groups).shape != (len(X),):
            raise _err(f"added groups must be 1-D with one entry per clip ({len(X)}), got {np.asarray(groups).shape}")
        if self._chunks and bool(self._group_chunks) != (groups is not None):
            raise _err("groups were given for some add() calls but not others; give them every time or never")
        if self._has_domains is not None and self._has_domains != (d is not None):
            raise _err("domains were given for some add() calls but not others; give them every time or never")
        if len(X) == 0:
            return self
        self._has_domains = d is not None
        self._dim = X.shape[1]
        self._chunks.append((X, s, d))
        if groups is not None:
            self._group_chunks = [np.concatenate(self._group_chunks + [np.asarray(groups)])]
        self._cache = None
        return self

    def _stored(self):
        if self._cache is None:
            if not self._chunks:
                raise _err("no clips observed yet; call add(features, scores, domains) first")
            X = np.concatenate([c[0] for c in self._chunks])
            s = np.concatenate([c[1] for c in self._chunks])
            d = None if not self._has_domains else np.concatenate([c[2] for c in self._chunks])
            self._chunks = [(X, s, d)]
            # Prepared from the whole array, so the result cannot depend on how clips were batched.
            self._cache = (self._prepare(X), s, d)
        return self._cache

    # ------------------------------------------------------------- computing
    def _distances(self, Q, X):
        """Distance matrix (|Q|, |X|); only the order within a row matters."""
        if self.metric == "cosine":
            return 1.0 - Q @ X.T
        sq = np.sum(Q * Q, axis=1)[:, None] + np.sum(X * X, axis=1)[None, :] - 2.0 * (Q @ X.T)
        return np.maximum(sq, 0.0)  # squared Euclidean: same order as the distance

    def _smooth(self, Q, q_scores, self_rows, ks, q_groups=None):
        """a_prop of the query rows Q for every K in ks.

        self_rows : int array (|Q|,) or None -- index of each query among the stored clips (excluded from
        its own neighbour set), or None when the queries are not stored.
        q_groups : array (|Q|,) or None -- each query's group: the stored items of that group are excluded.
        """
        X, s, d = self._stored()
        n = len(X)
        candidate = np.ones(n, dtype=bool) if self.domain == "all" else (d == "source")
        n_cand_all = int(candidate.sum())
        total = float(np.sum(s[candidate]))  # the sum of every saturated row, computed once
        groups = self._group_chunks[0] if self._group_chunks and q_groups is not None else None
        if groups is not None:  # per group: its candidates' count and a_G sum (left out of its members' rows)
            names, stored_code = np.unique(groups, return_inverse=True)
            pos = np.searchsorted(names, q_groups)
            known = (pos < len(names)) & (names[np.minimum(pos, len(names) - 1)] == q_groups)
            q_code = np.where(known, pos, -1)
            group_count = np.bincount(stored_code, weights=candidate, minlength=len(names))
            group_sum = np.bincount(stored_code, weights=np.where(candidate, s, 0.0), minlength=len(names))
        ks = [int(k) for k in ks]
        out = {k: np.empty(len(Q)) for k in ks}
        block = max(1, _BLOCK_ENTRIES // max(n, 1))
        for start in range(0, len(Q), block):
            stop = min(start + block, len(Q))
            D = self._distances(Q[start:stop], X)
            D[:, ~candidate] = np.inf
            n_cand = np.full(stop - start, n_cand_all)
            row_total = np.full(stop - start, total)
            if self_rows is not None:
                rows = np.arange(stop - start)
                own = self_rows[start:stop]
                D[rows, own] = np.inf
                n_cand -= candidate[own].astype(int)
            if groups is not None:
                code = q_code[start:stop]
                D[code[:, None] == stored_code[None, :]] = np.inf
                in_group = code >= 0
                n_cand = np.full(stop - start, n_cand_all)
                n_cand[in_group] -= group_count[code[in_group]].astype(int)
                row_total[in_group] -= group_sum[code[in_group]]
                if self_rows is not None:  # a stored query outside every group (cannot happen): itself only
                    n_cand[~in_group] -= candidate[self_rows[start:stop][~in_group]].astype(int)
            # Stable sort: equal distances keep observation order (deterministic tie-breaking).
            order = np.argsort(D, axis=1, kind="stable")
            csum = np.cumsum(s[order], axis=1)
            csum = np.concatenate([np.zeros((stop - start, 1)), csum], axis=1)  # csum[:, m] = sum of m nearest
            rows = np.arange(stop - start)
            q = q_scores[start:stop]
            own_candidate = np.zeros(stop - start, bool) if self_rows is None else candidate[self_rows[start:stop]]
            for k in ks:
                m = np.minimum(k - 1, n_cand)
                values = (q + csum[rows, m]) / (1.0 + m)
                # saturated rows: one sum over all candidates for every row (exactly equal values)
                full = m == n_cand
                if groups is not None:  # the item plus every candidate outside its group: one sum per group
                    values[full] = (q[full] + row_total[full]) / (1.0 + n_cand[full])
                    out[k][start:stop] = values
                    continue
                if n_cand_all:
                    values[full & own_candidate] = total / n_cand_all
                values[full & ~own_candidate] = (q[full & ~own_candidate] + total) / (1.0 + n_cand_all)
                out[k][start:stop] = values
        return out

    def smoothed(self, k: int | None = None) -> np.ndarray:
        """a_prop (eq. 7) of every observed clip, in observation order, with the current set F.

        ``k`` overrides the smoother's K for this call.
        """
        return self.smoothed_many([self.k if k is None else k])[self.k if k is None else k]

    def smoothed_many(self, ks) -> dict:
        """a_prop of every observed clip for several K at once (one distance computation): {K: array}."""
        ks = list(ks)
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise _err(f"every k must be a positive integer, got {k!r}")
        X, s, _ = self._stored()
        groups = self._group_chunks[0] if self._group_chunks else None
        return self._smooth(X, s, np.arange(len(X)), ks, groups)

    def score_new(self, features, scores, domains=None, add: bool = True) -> np.ndarray:
        """a_prop of newly observed clips.

        With ``add=True`` (a monitoring system): the clips join F first, then are scored against all
        clips observed so far including each other -- equal to the rows of these clips in a batch
        computation over everything observed (up to rounding in the distance products). Earlier clips'
        ``smoothed()`` values may change, as their neighbourhoods now include the new clips.

        With ``add=False``: the clips are scored against the stored clips only and are not stored (each
        query's own a_G still counts as the first term of eq. 7).
        """
        X, s, d = self._check(features, scores, domains, "new")
        if len(X) == 0:
            return np.empty(0)
        if add:
            first = self.n_observed
            self.add(features, scores, domains)
            Xs, ss, _ = self._stored()
            rows = np.arange(first, first + len(X))
            return self._smooth(Xs[rows], ss[rows], rows, [self.k])[self.k]
        if self._has_domains is not None and self._has_domains != (d is not None):
            raise _err("domains were given for some calls but not others; give them every time or never")
        return self._smooth(self._prepare(X), s, None, [self.k])[self.k]


def neighbourhood_smooth(features, scores, k, domains=None, metric="cosine", domain="all",
                         groups=None) -> np.ndarray:
    """Batch a_prop (eq. 7) of one machine type and section: see :class:`NeighbourhoodSmoother`."""
    return NeighbourhoodSmoother(k, metric=metric, domain=domain).add(features, scores, domains,
                                                                      groups).smoothed()
