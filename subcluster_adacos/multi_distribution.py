"""Multiple distributions based on sub-cluster AdaCos (Wilkinghoff, DCASE 2021 workshop).

"Combining multiple distributions based on sub-cluster AdaCos for anomalous sound detection under domain
shifted conditions". No public code exists; everything here follows the paper (REFERENCE.md §5).

Classes (paper Sec. 2.3, Table 1)
---------------------------------
Two label sets are read from the DCASE 2021 training file names of the development *and* the evaluation
set (all normal training clips, source and target domain):

* sections: machine type + section, ``"fan/section_00"`` (42 in the real data);
* attribute classes: machine type + section + the attribute string after the file index,
  ``"fan/section_00/strength_1_ambient"`` (199 in the paper).

Networks
--------
The modified ResNet of the 2020 paper with two :class:`~subcluster_adacos.layers.SubClusterAdaCos` heads
of equal loss weight (``BOTH_HEADS``, "sections and file endings" in Table 4) or with the section head only
(``SECTIONS_ONLY``, "sections"); one mixup for the features and both label sets (same λ). See
:func:`train_network`.

Scores of one network (paper Sec. 2.4)
--------------------------------------
All GMMs are scikit-learn ``GaussianMixture`` models (via :class:`asdcore.backends.GMMBackend`) on
L2-normalised embeddings, full covariance, ``1e-3`` added to the diagonal, means initialised with the
learned (L2-normalised) centres. With ``log P(x|., k)`` the log of the *weighted* likelihood of component
``k`` (``log π_k + log N(x | μ_k, Σ_k)``; see ``component_weights``):

* eq. (2), source domain: ``Z_source(x) = -max_k log P(x|s(x),k) - max_k max_{a in A(s(x))} log P(x|a,k)``
  with one GMM (S components) per section on the section's *source* normal training clips and one GMM
  (S components) per attribute class on its source normal training clips; ``A(s)`` = the attribute classes
  with source training clips in section ``s``;
* eq. (3), target domain: ``Z_target(x) = -max_k log P(x|s(x),k) - max_{k=1,2,3} log P(x|X_target(s(x)),k)``
  with the same section GMM and a GMM with one component per target training clip of the section (three in
  the real data), initialised at those clips; with the 1e-3 regularisation each component collapses onto
  its clip, so the second term is ``500 * min_t ||x - t||^2 + const`` = a scaled cosine distance to the
  closest normal target clip (the paper's remark);
* eq. (4), source domain of valve: ``Z~_source(x) = Z_source(x) - max_{a in A(s(x))} log P_tmax(t_max(x)|a)``
  with one full-covariance Gaussian per attribute class on the temporal maximum of the normalised log-mel
  spectrogram of its source normal training clips.

Ensembles and decisions (paper Sec. 2.5, 2.6)
---------------------------------------------
A score set is the scores of one network at one checkpoint; the ensemble sums the score sets of
S in {1, 2, 4, 8, 16} x 4 checkpoints (20 sets) of one variant; per machine type the variant of the paper
(``PAPER_SECTIONS_ONLY_TYPES`` use the section head only) or the better one on the development set.
Decision threshold per section and domain: the 90th percentile (``numpy.percentile``, linear
interpolation) of the decision scores of the section's normal training clips of that domain; a test clip
is anomalous when its decision score exceeds the threshold. Decision score = ``Z_source`` on the source
domain and only the first term of eq. (3) on the target domain (training clips *and*, by default, test
clips; ``target_decision="full"`` compares the full ``Z_target`` of the test clips instead).

Choices the paper leaves open (defaults; options in ``MultiDistributionConfig``)
----------------------------------------------------------------------------------
* "weighted likelihoods of component k": the mixture weight is included (``component_weights=True``);
  the 2020 public code scores without it (``False``).
* The section GMM is fitted on the section's source clips only (eq. (2) and the text "normal data of the
  source domain"; ``section_gmm_data="all"`` adds the target clips, as the author's DCASE 2022 code does);
  the target term has one component per target clip (three in the real data).
* A GMM's term is the largest (weighted) component log-likelihood, as eqs. (2)-(3) write it
  (``gmm_score="component"``); ``"mixture"`` takes the full mixture log-likelihood, the rule of the
  author's DCASE 2022 code.
* No class weights (``class_weight="none"``): the author's DCASE 2022 code, the descendant of this system,
  applies none (Keras' ``fit`` cannot take ``class_weight`` for a model with two outputs); "balanced" per
  head, the 2020 code's choice, stays a setting.
* Section-only networks have no attribute centres: their attribute GMMs start from the section's centres.
* The eq. (4) term is part of every score set (``tmax_term="per_set"``): eq. (4) defines the score of one
  system and Sec. 2.5 sums the systems' scores, so a 20-set ensemble holds it 20 times, in the same
  proportion to the embedding terms as in one set. ``"once"`` adds it once to the summed ensemble
  (:func:`add_temporal_max`), so it weighs as one of the 20 sets' embedding terms.
* A class with one training clip (possible in small data) gets a Gaussian at that clip with covariance
  ``reg_covar * I``; scikit-learn needs two samples, so the clip is given twice.
* Target decisions compare the first term of eq. (3) of the test clip with the threshold from the same
  term of the target training clips (``target_decision="first_term"``).

BLAS threads
------------
The GMMs are small (D = 128, a few hundred clips each) and there are many of them (sections + attribute
classes + target sets per score set). Multi-threaded OpenBLAS/OpenMP is slower on such problems, and on a
busy CPU much slower (measured here on 2 loaded cores: 1-2 s per 4-clip GMM with 2 threads, 0.02 s with
one), so every fit runs under ``threadpoolctl.threadpool_limits(1)``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from asdcore.atomic_io import atomic_save_npz
from asdcore.backends import GaussianBackend, GMMBackend, fit_progress
from asdcore.errors import ASDError

__all__ = [
    "BOTH_HEADS", "SECTIONS_ONLY", "VARIANTS", "PAPER_SECTIONS_ONLY_TYPES", "TERMS",
    "section_keys", "attribute_keys", "TrainingClasses", "train_network", "head_centres",
    "weighted_component_log_likelihoods", "DistributionScorer", "TemporalMaxScorer", "ScoreSet",
    "combine_terms", "add_temporal_max", "sum_score_sets", "decision_thresholds", "decide", "paper_variants",
    "choose_variants_on_dev", "select_by_type", "score_network", "NetworkOutputs", "network_outputs",
    "score_outputs", "temporal_max", "build_ensembles",
]

BOTH_HEADS = "sections_attributes"
SECTIONS_ONLY = "sections"
VARIANTS = (BOTH_HEADS, SECTIONS_ONLY)
#: Sec. 2.5: fan, gearbox and valve use the network trained with the section loss only.
PAPER_SECTIONS_ONLY_TYPES = ("fan", "gearbox", "valve")
#: The terms of eqs. (2)-(4): section GMM, attribute GMMs, target-clip GMM, temporal-maximum Gaussians.
TERMS = ("section", "attribute", "target", "tmax")


# --- classes from the file names ----------------------------------------------------------------------

def section_keys(table: pd.DataFrame) -> np.ndarray:
    """``<machine_type>/<section_XX>`` per clip: the section classes."""
    return (table["machine_type"].astype(str) + "/" + table["unit"].astype(str)).to_numpy()


def attribute_keys(table: pd.DataFrame) -> np.ndarray:
    """``<machine_type>/<section_XX>/<attributes>`` per clip: the attribute classes (training clips; test
    clips carry no attributes in DCASE 2021, so their key ends in ``/``)."""
    return (section_keys(table) + "/" + table["attributes"].fillna("").astype(str)).to_numpy(dtype=object)


@dataclass
class TrainingClasses:
    """The two label sets of the training clips (paper Sec. 2.3).

    Attributes
    ----------
    rows : bool array over the table, the training clips (normal, source and target, dev and eval).
    section_names, attribute_names : sorted class names.
    section_labels, attribute_labels : integer class of each training clip (aligned with ``rows``).
    """

    rows: np.ndarray
    section_names: np.ndarray
    attribute_names: np.ndarray
    section_labels: np.ndarray
    attribute_labels: np.ndarray

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> "TrainingClasses":
        rows = ((table["split"] == "train") & (table["label"] == "normal")).to_numpy()
        if not rows.any():
            raise ASDError("the clip table has no normal training clip; give a DCASE 2021 root with train/ folders")
        sections = section_keys(table)[rows]
        attributes = attribute_keys(table)[rows]
        section_names, section_labels = np.unique(sections, return_inverse=True)
        attribute_names, attribute_labels = np.unique(attributes, return_inverse=True)
        return cls(rows, section_names.astype(str), attribute_names.astype(str), section_labels.astype(np.int64),
                   attribute_labels.astype(np.int64))

    @property
    def n_sections(self) -> int:
        return len(self.section_names)

    @property
    def n_attributes(self) -> int:
        return len(self.attribute_names)


# --- networks ------------------------------------------------------------------------------------------

def train_network(variant: str, features: np.ndarray, classes: TrainingClasses, training_config,
                  model_dir=None, seed: int = 0, verbose: int = 0, loss_weights=None):
    """Train one embedding network of a variant on the training clips.

    Parameters
    ----------
    variant : ``BOTH_HEADS`` (section and attribute heads, equal loss weights) or ``SECTIONS_ONLY``.
    features : normalised log-mel (clips, frames, bins) of the training clips ``classes.rows``, or of every
        clip of the table (then the training rows are read lazily, batch by batch: pass a
        :class:`~asdcore.features.StandardisedView` of the memory-mapped features, nothing is copied).
    training_config : :class:`subcluster_adacos.training.TrainingConfig` (S, epochs, checkpoints, ...).
    loss_weights : weights of the two heads' losses (default equal, paper Sec. 2.3).

    Returns
    -------
    model, info : as :func:`subcluster_adacos.training.train_model` (``info["snapshots"]``: epoch -> path).
    """
    from subcluster_adacos.training import train_model, train_multi_head_model

    n_train = int(classes.rows.sum())
    rows = None
    if len(features) == len(classes.rows) and len(features) != n_train:
        rows = classes.rows
    elif len(features) != n_train:
        raise ASDError(f"{len(features)} feature arrays for {n_train} training clips ({len(classes.rows)} clips)")
    if variant == SECTIONS_ONLY:
        return train_model(features, classes.section_labels, classes.n_sections, training_config,
                           model_dir=model_dir, seed=seed, verbose=verbose, rows=rows)
    if variant == BOTH_HEADS:
        return train_multi_head_model(features, [classes.section_labels, classes.attribute_labels],
                                      [classes.n_sections, classes.n_attributes], training_config,
                                      model_dir=model_dir, seed=seed, verbose=verbose, loss_weights=loss_weights,
                                      rows=rows)
    raise ASDError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def head_centres(model, classes: TrainingClasses) -> tuple[dict, dict | None]:
    """L2-normalised learned centres per class: ``({section: (S, D)}, {attribute: (S, D)} or None)``.

    The attribute head is the layer ``head_1`` of a two-head model; a section-only model gives None.
    """
    from subcluster_adacos.layers import normalized_centers
    from subcluster_adacos.network import head_layer

    sections = normalized_centers(head_layer(model))
    if sections.shape[0] != classes.n_sections:
        raise ASDError(f"the model's section head has {sections.shape[0]} classes, the data {classes.n_sections}; "
                       "score a model trained on this data set")
    section_centres = dict(zip(classes.section_names, sections))
    try:
        attribute_head = model.get_layer("head_1")
    except ValueError:
        return section_centres, None
    attributes = normalized_centers(attribute_head)
    if attributes.shape[0] != classes.n_attributes:
        raise ASDError(f"the model's attribute head has {attributes.shape[0]} classes, the data "
                       f"{classes.n_attributes}; score a model trained on this data set")
    return section_centres, dict(zip(classes.attribute_names, attributes))


# --- the distributions of eqs. (2)-(4) ------------------------------------------------------------------

def weighted_component_log_likelihoods(backend: GMMBackend, X, component_weights: bool = True) -> np.ndarray:
    """``log P(x|., k)`` of every component of a fitted :class:`GMMBackend`: ``log π_k + log N(x|μ_k, Σ_k)``
    (``component_weights=True``, the paper's "weighted likelihoods of component k") or ``log N`` alone
    (the 2020 public code's scores). Array (n_samples, n_components)."""
    log_densities = backend.component_log_densities(X)
    if component_weights:
        log_densities = log_densities + np.log(backend.gmm_.weights_)[None, :]
    return log_densities


def _normal_train(table, domain):
    return ((table["split"] == "train") & (table["label"] == "normal") & (table["domain"] == domain)).to_numpy()


class DistributionScorer:
    """The GMMs of eqs. (2) and (3) for the embeddings of one network (one score set).

    Parameters
    ----------
    reg_covar : float, default 1e-3
        Added to every covariance diagonal (paper Sec. 2.4).
    component_weights : bool, default True
        Include the mixture weight in ``log P(x|., k)`` (see :func:`weighted_component_log_likelihoods`).
    gmm_score : {"component", "mixture"}, default "component"
        ``"component"``: a GMM's term is ``max_k log P(x|., k)`` (the paper's eqs. (2)-(3));
        ``"mixture"``: the full mixture log-likelihood ``log sum_k π_k N(x|μ_k, Σ_k)`` (the author's DCASE
        2022 code, ``score_samples``); ``component_weights`` then plays no part.
    section_data : {"source", "all"}, default "source"
        Training clips of the section GMM: the section's source normal clips (the paper: "normal data of
        the source domain") or all of its normal clips, target included (the author's DCASE 2022 code).

    Attributes (after :meth:`fit`)
    ------------------------------
    section_gmms_ : dict section -> GMMBackend (S components, source (or all) normal training clips)
    attribute_gmms_ : dict attribute class -> GMMBackend (S components, source normal training clips)
    attributes_of_section_ : dict section -> list of its attribute classes with source training clips
    target_gmms_ : dict section -> GMMBackend (one component per target training clip, means at them)
    """

    GMM_SCORES = ("component", "mixture")
    SECTION_DATA = ("source", "all")

    def __init__(self, reg_covar: float = 1e-3, component_weights: bool = True, gmm_score: str = "component",
                 section_data: str = "source"):
        if gmm_score not in self.GMM_SCORES:
            raise ASDError(f"gmm_score must be 'component' or 'mixture', got {gmm_score!r}")
        if section_data not in self.SECTION_DATA:
            raise ASDError(f"section_gmm_data must be 'source' or 'all', got {section_data!r}")
        self.reg_covar = reg_covar
        self.component_weights = component_weights
        self.gmm_score = gmm_score
        self.section_data = section_data

    def _gmm(self, X, means):
        """A GMMBackend with ``len(means)`` components started at ``means``. A class with a single clip gets
        a Gaussian at that clip with covariance ``reg_covar * I`` (the maximum-likelihood fit; scikit-learn
        refuses one sample, so the clip is given twice)."""
        means = np.asarray(means, dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 1:
            X = np.repeat(X, 2, axis=0)
        with threadpool_limits(limits=1), warnings.catch_warnings():  # BLAS threads: see the module notes
            # scikit-learn's k-means start warns when a class has fewer distinct clips than components; the
            # means come from means_init anyway
            warnings.filterwarnings("ignore", message="Number of distinct clusters")
            return GMMBackend(n_components=len(means), means_init=means, reg_covar=self.reg_covar).fit(X)

    def fit(self, embeddings: np.ndarray, table: pd.DataFrame, section_centres: dict,
            attribute_centres: dict | None = None) -> "DistributionScorer":
        """Fit every GMM on the normal training embeddings of ``table``.

        Parameters
        ----------
        embeddings : (clips, D) aligned with ``table``.
        section_centres : section -> (S, D) learned centres (means_init of the section GMM).
        attribute_centres : attribute class -> (S, D), or None for a section-only network: the attribute
            GMMs then start from the centres of their section.
        """
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.shape[0] != len(table):
            raise ASDError(f"{embeddings.shape[0]} embeddings for {len(table)} clips")
        sections, attributes = section_keys(table), attribute_keys(table)
        source, target = _normal_train(table, "source"), _normal_train(table, "target")
        self.section_gmms_, self.attribute_gmms_, self.target_gmms_ = {}, {}, {}
        self.attributes_of_section_ = {}
        for section in fit_progress(np.unique(sections[source]), "GMMs (sections, attribute classes)"):
            if section not in section_centres:
                raise ASDError(f"{section}: no learned centres; the network was trained on other sections")
            rows = source & (sections == section)
            section_rows = (source | target) & (sections == section) if self.section_data == "all" else rows
            self.section_gmms_[section] = self._gmm(embeddings[section_rows], section_centres[section])
            self.attributes_of_section_[section] = []
            for attribute in np.unique(attributes[rows]):
                if attribute_centres is None:
                    centres = section_centres[section]
                else:
                    centres = attribute_centres.get(attribute)
                if centres is None:
                    raise ASDError(f"{attribute}: no learned centres; the network was trained on other classes")
                self.attribute_gmms_[attribute] = self._gmm(embeddings[rows & (attributes == attribute)], centres)
                self.attributes_of_section_[section].append(attribute)
        for section in np.unique(sections[target]):
            rows = target & (sections == section)
            self.target_gmms_[section] = self._gmm(embeddings[rows], embeddings[rows])
        return self

    def _max_log_likelihood(self, backend, X):
        """``max_k log P(x|., k)`` or, with ``gmm_score="mixture"``, ``log sum_k π_k N(x|μ_k, Σ_k)``."""
        if self.gmm_score == "mixture":
            return logsumexp(weighted_component_log_likelihoods(backend, X, True), axis=1)
        return weighted_component_log_likelihoods(backend, X, self.component_weights).max(axis=1)

    def terms(self, embeddings: np.ndarray, table: pd.DataFrame, require_target: bool = True) -> dict[str, np.ndarray]:
        """The three negative log-likelihood terms for every clip of ``table`` (train and test, both
        domains): ``section`` = ``-max_k log P(x|s(x),k)``, ``attribute`` =
        ``-max_k max_{a in A(s(x))} log P(x|a,k)``, ``target`` = ``-max_k log P(x|X_target(s(x)),k)``.
        ``require_target=False`` (a section without target training clips, scored in its source domain only:
        ``asd fit``) leaves its ``target`` term NaN instead of raising."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        sections = section_keys(table)
        out = {name: np.full(len(table), np.nan) for name in ("section", "attribute", "target")}
        for section in np.unique(sections):
            rows = sections == section
            if section not in self.section_gmms_:
                raise ASDError(f"{section}: clips to score but no source training clips to fit its GMM on")
            if section not in self.target_gmms_ and require_target:
                raise ASDError(f"{section}: clips to score but no target training clips for eq. (3)")
            X = embeddings[rows]
            out["section"][rows] = -self._max_log_likelihood(self.section_gmms_[section], X)
            per_attribute = [self._max_log_likelihood(self.attribute_gmms_[a], X)
                             for a in self.attributes_of_section_[section]]
            out["attribute"][rows] = -np.max(per_attribute, axis=0)
            if section in self.target_gmms_:
                out["target"][rows] = -self._max_log_likelihood(self.target_gmms_[section], X)
        return out


class TemporalMaxScorer:
    """The extra term of eq. (4): one full-covariance Gaussian per attribute class on the temporal maximum
    of the normalised log-mel of its source normal training clips; term = ``-max_{a in A(s(x))} log
    P_tmax(t_max(x)|a)``, only for clips of ``machine_types`` (0 for the others).

    Parameters
    ----------
    machine_types : tuple, default ("valve",)
    reg_covar : float, default 1e-3
    """

    def __init__(self, machine_types=("valve",), reg_covar: float = 1e-3):
        self.machine_types = tuple(machine_types)
        self.reg_covar = reg_covar

    def fit(self, tmax: np.ndarray, table: pd.DataFrame) -> "TemporalMaxScorer":
        """``tmax``: (clips, bins) temporal maxima aligned with ``table``
        (:func:`asdcore.representations.temporal_statistic` with ``"max"``)."""
        sections, attributes = section_keys(table), attribute_keys(table)
        rows = _normal_train(table, "source") & table["machine_type"].isin(self.machine_types).to_numpy()
        self.gaussians_, self.attributes_of_section_ = {}, {}
        for attribute in np.unique(attributes[rows]):
            selected = rows & (attributes == attribute)
            X = np.asarray(tmax, dtype=np.float64)[selected]
            if len(X) == 1:  # one clip: the Gaussian at it with covariance reg_covar * I (as DistributionScorer)
                X = np.repeat(X, 2, axis=0)
            with threadpool_limits(limits=1):
                self.gaussians_[attribute] = GaussianBackend("full", reg_covar=self.reg_covar,
                                                             normalize=False).fit(X)
            self.attributes_of_section_.setdefault(sections[selected][0], []).append(attribute)
        return self

    def term(self, tmax: np.ndarray, table: pd.DataFrame) -> np.ndarray:
        tmax = np.asarray(tmax, dtype=np.float64)
        sections = section_keys(table)
        out = np.zeros(len(table))
        chosen = table["machine_type"].isin(self.machine_types).to_numpy()
        for section in np.unique(sections[chosen]):
            if section not in self.attributes_of_section_:
                raise ASDError(f"{section}: clips to score but no source training clips for eq. (4)")
            rows = chosen & (sections == section)
            # GaussianBackend.score is the negative log-likelihood
            log_p = [-self.gaussians_[a].score(tmax[rows]) for a in self.attributes_of_section_[section]]
            out[rows] = -np.max(log_p, axis=0)
        return out


# --- score sets, ensembles, decisions -------------------------------------------------------------------

@dataclass
class ScoreSet:
    """Scores of one network/checkpoint, or the sum of several (an ensemble).

    score : the anomaly score per clip (eq. (2) or (4) on the source domain, eq. (3) on the target domain)
    decision : the score thresholded for decisions (see :func:`combine_terms`)
    terms : the single terms (``TERMS``) per clip, for Table 3
    n_sets : how many score sets were summed
    """

    score: np.ndarray
    decision: np.ndarray
    terms: dict = field(default_factory=dict)
    n_sets: int = 1

    def __add__(self, other: "ScoreSet") -> "ScoreSet":
        names = set(self.terms) | set(other.terms)
        zeros = np.zeros_like(self.score)
        terms = {n: self.terms.get(n, zeros) + other.terms.get(n, zeros) for n in names}
        return ScoreSet(self.score + other.score, self.decision + other.decision, terms, self.n_sets + other.n_sets)


def combine_terms(terms: dict, table: pd.DataFrame, tmax_term: np.ndarray | None = None,
                  target_decision: str = "first_term") -> ScoreSet:
    """Eqs. (2)-(4) from the terms of :meth:`DistributionScorer.terms`.

    Source-domain clips: ``section + attribute`` (eq. 2) plus ``tmax_term`` where given (eq. 4; pass zeros
    or None for the other machine types). Target-domain clips: ``section + target`` (eq. 3). Test clips whose
    domain is ``""`` (unknown, as in the DCASE 2022-2025 evaluation names): the smaller of the two.
    Decision score (Sec. 2.6): the score on the source domain; on the target domain the first term of
    eq. (3) (``target_decision="first_term"``) or, for test clips, the full score (``"full"``; training
    clips keep the first term, which sets the threshold).
    """
    if target_decision not in ("first_term", "full"):
        raise ASDError(f"target_decision must be 'first_term' or 'full', got {target_decision!r}")
    source = (table["domain"] == "source").to_numpy()
    target = (table["domain"] == "target").to_numpy()
    unknown = ~(source | target)
    if np.any(unknown & (table["split"] != "test").to_numpy()):
        raise ASDError("every training clip needs domain 'source' or 'target' (DCASE 2021-2025 names)")
    tmax_term = np.zeros(len(table)) if tmax_term is None else np.asarray(tmax_term, dtype=np.float64)
    as_source = terms["section"] + terms["attribute"] + tmax_term
    as_target = terms["section"] + terms["target"]
    score = np.where(source, as_source, as_target)
    decision = np.where(source, score, terms["section"])
    # a test clip of unknown domain (DCASE 2022-2025 evaluation names carry none): the smaller of eqs. (2)/(4)
    # and (3), i.e. scored in the domain it fits best (adaptation "domain-free score", docs/later-dcase.md)
    score = np.where(unknown, np.minimum(as_source, as_target), score)
    decision = np.where(unknown, np.minimum(as_source, terms["section"]), decision)
    if target_decision == "full":
        test = (table["split"] == "test").to_numpy()
        decision = np.where(target & test, score, decision)
    out_terms = {name: np.asarray(terms[name], dtype=np.float64) for name in ("section", "attribute", "target")}
    out_terms["tmax"] = tmax_term
    return ScoreSet(score, decision, out_terms, 1)


def add_temporal_max(score_set: ScoreSet, tmax_term: np.ndarray | None, table: pd.DataFrame,
                     with_term: np.ndarray | None = None) -> ScoreSet:
    """``score_set`` with the eq. (4) term added once (``tmax_term: once``: the term enters the summed ensemble
    once instead of once per score set, :func:`combine_terms`); ``with_term`` marks the clips of the machine
    types that have the term (default: every clip; ``tmax_term`` is 0 for the others).

    Source-domain clips: the term is added to the score and the decision score. Test clips of unknown domain
    (DCASE 2022-2025 evaluation names) of those types: the ensemble is scored as one system, whose source
    reading is eq. (4) on its summed terms, ``section + attribute + tmax``, and whose target reading is
    eq. (3), ``section + target``; the score is the smaller of the two and the decision score the smaller of
    the source reading and the section term (the domain-free rule of :func:`combine_terms` applied to the
    ensemble, as the term exists only for the ensemble). Target-domain clips are unchanged.
    """
    if tmax_term is None:
        return score_set
    tmax_term = np.asarray(tmax_term, dtype=np.float64)
    source = (table["domain"] == "source").to_numpy()
    unknown = ~(source | (table["domain"] == "target").to_numpy())
    if with_term is not None:
        unknown &= np.asarray(with_term, dtype=bool)
    added = np.where(source | unknown, tmax_term, 0.0)
    terms = dict(score_set.terms)
    zeros = np.zeros_like(added)
    terms["tmax"] = terms.get("tmax", zeros) + added
    score = np.where(source, score_set.score + added, score_set.score)
    decision = np.where(source, score_set.decision + added, score_set.decision)
    if unknown.any():
        section = terms.get("section", zeros)
        as_source = section + terms.get("attribute", zeros) + terms["tmax"]
        as_target = section + terms.get("target", zeros)
        score = np.where(unknown, np.minimum(as_source, as_target), score)
        decision = np.where(unknown, np.minimum(as_source, section), decision)
    return ScoreSet(score, decision, terms, score_set.n_sets)


def sum_score_sets(sets) -> ScoreSet:
    """The ensemble of Sec. 2.5: score sets summed (no normalisation)."""
    sets = list(sets)
    if not sets:
        raise ASDError("an ensemble needs at least one score set (every network diverged or none was trained)")
    total = sets[0]
    for other in sets[1:]:
        total = total + other
    return total


def decision_thresholds(decision_scores: np.ndarray, table: pd.DataFrame, percentile: float = 90.0) -> pd.DataFrame:
    """Sec. 2.6: per (machine type, section, domain) the ``percentile``-th percentile (numpy, linear) of the
    decision scores of the normal training clips of that section and domain.

    Returns
    -------
    DataFrame with ``machine_type, unit, domain, threshold, n_train``.
    """
    decision_scores = np.asarray(decision_scores, dtype=np.float64)
    train = ((table["split"] == "train") & (table["label"] == "normal")).to_numpy()
    rows = []
    keys = table.loc[train, ["machine_type", "unit", "domain"]].assign(position=np.flatnonzero(train))
    for (machine_type, unit, domain), group in keys.groupby(["machine_type", "unit", "domain"], sort=True):
        values = decision_scores[group["position"].to_numpy()]
        if not np.all(np.isfinite(values)):
            raise ASDError(f"{machine_type} {unit} {domain}: non-finite training scores; cannot set a threshold")
        rows.append({"machine_type": machine_type, "unit": unit, "domain": domain,
                     "threshold": float(np.percentile(values, percentile)), "n_train": int(len(values))})
    return pd.DataFrame(rows, columns=["machine_type", "unit", "domain", "threshold", "n_train"])


def decide(decision_scores: np.ndarray, table: pd.DataFrame, thresholds: pd.DataFrame) -> np.ndarray:
    """1 (anomalous) where a test clip's decision score exceeds the threshold of its section and domain,
    else 0; NaN for training clips."""
    decision_scores = np.asarray(decision_scores, dtype=np.float64)
    lookup = {(r.machine_type, r.unit, r.domain): r.threshold for r in thresholds.itertuples(index=False)}
    out = np.full(len(table), np.nan)
    test = (table["split"] == "test").to_numpy()
    keys = list(zip(table["machine_type"], table["unit"], table["domain"]))
    for i in np.flatnonzero(test):
        if keys[i][2] == "":  # a test clip of unknown domain (2022-2025 evaluation): the source threshold
            keys[i] = (keys[i][0], keys[i][1], "source")
        if keys[i] not in lookup:
            raise ASDError(f"{' '.join(keys[i])}: test clips but no normal training clips to set a threshold")
        out[i] = float(decision_scores[i] > lookup[keys[i]])
    return out


# --- the variant per machine type (Sec. 2.5) ---------------------------------------------------------------

def paper_variants(machine_types, sections_only_types=PAPER_SECTIONS_ONLY_TYPES) -> dict:
    """The paper's choice: section head only for fan, gearbox and valve, both heads for the others."""
    return {t: SECTIONS_ONLY if t in sections_only_types else BOTH_HEADS for t in sorted(set(machine_types))}


def choose_variants_on_dev(table: pd.DataFrame, scores_by_variant: dict, default: dict) -> tuple[dict, pd.DataFrame]:
    """Per machine type the variant with the higher harmonic mean of all dev AUCs and pAUCs (its sections
    and both domains, the official DCASE 2021 statistic); ties and types without labelled dev test clips
    keep ``default``.

    Returns
    -------
    choice : machine type -> variant
    table : DataFrame ``machine_type, variant, dev_score`` (the statistic of every variant)
    """
    from asdcore.metrics import evaluate_clips, harmonic_mean

    labelled = ((table["part"] == "dev") & (table["split"] == "test")
                & table["label"].isin(["normal", "anomaly"])).to_numpy()
    rows, choice = [], dict(default)
    for machine_type in sorted(set(table["machine_type"])):
        best, best_score = default.get(machine_type), -np.inf
        selected = labelled & (table["machine_type"] == machine_type).to_numpy()
        if not selected.any():
            continue
        for variant, scores in scores_by_variant.items():
            part = table[selected].assign(score=np.asarray(scores)[selected])
            per_unit = evaluate_clips(part, "score")
            score = harmonic_mean(np.concatenate([per_unit["auc"], per_unit["pauc"]]))
            rows.append({"machine_type": machine_type, "variant": variant, "dev_score": score})
            if score > best_score or (score == best_score and variant == default.get(machine_type)):
                best, best_score = variant, score
        choice[machine_type] = best
    return choice, pd.DataFrame(rows, columns=["machine_type", "variant", "dev_score"])


def select_by_type(table: pd.DataFrame, sets_by_variant: dict, choice: dict) -> ScoreSet:
    """One :class:`ScoreSet` whose rows of each machine type come from the variant chosen for that type."""
    types = table["machine_type"].to_numpy()
    missing = sorted(set(types) - set(choice))
    if missing:
        raise ASDError(f"no variant chosen for machine type(s) {missing}")
    first = next(iter(sets_by_variant.values()))
    score, decision = np.full_like(first.score, np.nan), np.full_like(first.decision, np.nan)
    terms = {name: np.full_like(first.score, np.nan) for name in first.terms}
    n_sets = 0
    for machine_type in sorted(set(types)):
        variant = choice[machine_type]
        if variant not in sets_by_variant:
            raise ASDError(f"{machine_type}: variant {variant!r} has no score set (not trained, or every network "
                           "diverged: see run.log); train it again, e.g. with another --seed")
        chosen, rows = sets_by_variant[variant], types == machine_type
        score[rows], decision[rows] = chosen.score[rows], chosen.decision[rows]
        for name in terms:
            terms[name][rows] = chosen.terms[name][rows]
        n_sets = max(n_sets, chosen.n_sets)
    return ScoreSet(score, decision, terms, n_sets)


@dataclass
class NetworkOutputs:
    """What one snapshot of a network gives the scores of Sec. 2.4: the embeddings of every clip and the
    learned (L2-normalised) centres of its heads (``attribute_centres`` None for a section-only network).
    Saved by the training unit (:meth:`save`), scored later without Keras (:func:`score_outputs`)."""

    embeddings: np.ndarray
    section_centres: dict
    attribute_centres: dict | None = None

    def save(self, path) -> None:
        """One ``.npz`` file (written atomically, :func:`asdcore.atomic_io.atomic_save_npz`)."""
        # float32: the network's outputs are float32 (predict), so nothing is lost
        arrays = {"embeddings": np.asarray(self.embeddings, dtype=np.float32),
                  "section_names": np.array(list(self.section_centres), dtype=str),
                  "section_centres": np.stack(list(self.section_centres.values()))}
        if self.attribute_centres is not None:
            arrays["attribute_names"] = np.array(list(self.attribute_centres), dtype=str)
            arrays["attribute_centres"] = np.stack(list(self.attribute_centres.values()))
        atomic_save_npz(path, overwrite=True, **arrays)  # a resumed unit writes its snapshots' outputs again

    @classmethod
    def load(cls, path) -> "NetworkOutputs":
        with np.load(path) as data:
            sections = dict(zip(data["section_names"].tolist(), data["section_centres"]))
            attributes = (dict(zip(data["attribute_names"].tolist(), data["attribute_centres"]))
                          if "attribute_names" in data else None)
            return cls(np.asarray(data["embeddings"]), sections, attributes)


def network_outputs(model, features, classes: TrainingClasses, batch_size: int = 64,
                    chunk: int = 64 * 64) -> NetworkOutputs:
    """Embeddings of every clip of ``features`` (read ``chunk`` clips at a time, so a lazily standardised
    memory map is never copied whole; ``chunk`` a multiple of ``batch_size`` keeps the batches of one
    ``predict`` call) and the learned centres of the model's heads (:func:`head_centres`)."""
    from subcluster_adacos.scoring import extract_embeddings

    section_centres, attribute_centres = head_centres(model, classes)
    parts = [extract_embeddings(model, np.asarray(features[start:start + chunk], dtype=np.float32), batch_size)
             for start in range(0, len(features), chunk)]
    embeddings = np.concatenate(parts) if parts else np.zeros((0, 0))
    if not np.all(np.isfinite(embeddings)):
        raise ASDError("the network produced non-finite embeddings (training diverged); it cannot be scored")
    return NetworkOutputs(embeddings, section_centres, attribute_centres)


def score_outputs(outputs: NetworkOutputs, table: pd.DataFrame, tmax_term: np.ndarray | None = None,
                  reg_covar: float = 1e-3, component_weights: bool = True, target_decision: str = "first_term",
                  gmm_score: str = "component", section_gmm_data: str = "source") -> ScoreSet:
    """The score set of one snapshot from its :class:`NetworkOutputs`: the GMMs of eqs. (2)-(3)
    initialised with the learned centres (settings of :class:`DistributionScorer`), combined with the
    eq. (4) term."""
    embeddings = np.asarray(outputs.embeddings, dtype=np.float64)
    if len(embeddings) != len(table):
        raise ASDError(f"{len(embeddings)} embeddings for {len(table)} clips; the network's outputs belong to "
                       "another clip table")
    scorer = DistributionScorer(reg_covar=reg_covar, component_weights=component_weights, gmm_score=gmm_score,
                                section_data=section_gmm_data)
    scorer.fit(embeddings, table, outputs.section_centres, outputs.attribute_centres)
    return combine_terms(scorer.terms(embeddings, table), table, tmax_term, target_decision)


def score_network(model, features: np.ndarray, table: pd.DataFrame, classes: TrainingClasses,
                  tmax_term: np.ndarray | None = None, reg_covar: float = 1e-3, component_weights: bool = True,
                  target_decision: str = "first_term", batch_size: int = 64, gmm_score: str = "component",
                  section_gmm_data: str = "source") -> ScoreSet:
    """The score set of one trained network (one checkpoint): :func:`network_outputs` then
    :func:`score_outputs`."""
    return score_outputs(network_outputs(model, features, classes, batch_size), table, tmax_term, reg_covar,
                         component_weights, target_decision, gmm_score, section_gmm_data)


def temporal_max(features, normalizer=None, chunk: int = 1024) -> np.ndarray:
    """``t_max(x)`` of eq. (4): per mel bin the maximum over time, (clips, bins), read ``chunk`` clips at a
    time. With ``normalizer`` the maximum of the standardised log-mel: standardisation is increasing per
    bin, so it is applied to the maxima of the raw features (the same numbers, no standardised copy)."""
    parts = [np.asarray(features[start:start + chunk], dtype=np.float32).max(axis=1)
             for start in range(0, len(features), chunk)]
    tmax = np.concatenate(parts)
    return tmax if normalizer is None else normalizer.transform(tmax)


def build_ensembles(units, score_snapshot, log, singles: dict | None = None):
    """Sum the score sets of the finished units (networks) per variant, in the units' order (variant, then
    S) and by snapshot epoch: variant -> ScoreSet. ``score_snapshot(unit, epoch) -> ScoreSet``. A diverged
    network is left out with a warning. Also returns a DataFrame listing each score set (variant, S,
    epoch) and whether its network diverged. ``singles``, when given, collects every single score set:
    ``(S, epoch) -> {variant: ScoreSet}``."""
    sets, listing = {}, []
    for unit in units:
        variant, n_sub, result = unit.spec["variant"], unit.spec["n_subclusters"], unit.result()
        sets.setdefault(variant, [])
        if result["diverged"]:
            log.warning("%s diverged: its score sets are left out of the ensemble", unit.name)
            listing.append({"variant": variant, "n_subclusters": n_sub, "epoch": None, "diverged": True})
            continue
        for epoch in result["epochs"]:
            sets[variant].append(score_snapshot(unit, epoch))
            if singles is not None:
                singles.setdefault((int(n_sub), int(epoch)), {})[variant] = sets[variant][-1]
            listing.append({"variant": variant, "n_subclusters": n_sub, "epoch": epoch, "diverged": False})
    ensembles = {}
    for variant, variant_sets in sets.items():
        if not variant_sets:
            log.warning("%s: every network diverged; its systems are left out", variant)
            continue
        ensembles[variant] = sum_score_sets(variant_sets)
        log.info("%s: ensemble of %d score sets", variant, ensembles[variant].n_sets)
    return ensembles, pd.DataFrame(listing, columns=["variant", "n_subclusters", "epoch", "diverged"])
