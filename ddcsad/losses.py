"""Loss functions of Kuroyanagi et al., "Anomalous sound detection using a binary classification model
and class centroids" (EUSIPCO 2021 / DCASE 2020 task 2 data): BCE (eq. 1), DSAD (eq. 2), DDCSAD (eq. 3)
and the multi-task loss (eq. 4).

Every function takes tensors (or arrays) and uses ``keras.ops`` only, so it runs on any Keras backend.

Sets and labels
---------------
The paper splits a mini-batch into two sets:

* the **outlier set** X = {x_1 .. x_N}: clips of other machines, with one common label y. The paper
  always sets y = -1 (pseudo-anomalies);
* the **labelled set** X~ = {x~_1 .. x~_M}: clips of the target machine, normal (y~ = +1) or, when some
  are available, real anomalies (y~ = -1).

One integer code per clip carries both the set and the label:

============  =====  ====================  ===================
code          value  set                   label (exponent sign)
============  =====  ====================  ===================
``NORMAL``     +1    labelled set X~       y~ = +1
``OUTLIER``    -1    outlier set X         y  = -1
``ANOMALY``    -2    labelled set X~       y~ = -1
============  =====  ====================  ===================

So ``sign(code)`` is the paper's y or y~ and ``code != OUTLIER`` says whether the clip belongs to X~.
Real anomalies are members of X~ ("a set X~ that has M samples of normal and anomalous data", Sec. II-A):
in eqs. (2)-(3) they are weighted by eta like the normal clips. To count them as extra outliers instead
(weight 1, and part of the outlier centroid c_n), label them ``OUTLIER``. In the BCE (eq. 1) the two
choices are identical (no eta there).

Weight eta
----------
eta multiplies the sum over the **labelled set** X~ (normal clips and real anomalies), never the outlier
set. This is how eqs. (2)-(3) are written (the eta sum runs over j = 1..M, the labelled clips) and how
Deep SAD (Ruff et al., ICLR 2020, ref. [14]) weights its labelled samples. The normaliser is always the
batch size N + M (not a weighted count), as in the equations.

Exponent for y = -1 and epsilon
-------------------------------
``||z - c||^(2y)`` is the squared distance d = ||z - c||^2 for y = +1 and its inverse 1 / d for y = -1
(Deep SAD's "inverse squared distance" for anomalies). The code computes ``1 / (d + epsilon)`` so that
the term stays finite when an embedding sits exactly on a centroid; epsilon defaults to 1e-6 (the
value of the Deep SAD reference implementation) and is added only to the inverse terms (for y = +1 it
would only shift the loss by a constant). ``epsilon=0`` gives the paper's formula exactly.
"""
from __future__ import annotations

from keras import ops

from asdcore.errors import ASDError

NORMAL = 1
"""Code of a normal clip of the target machine (labelled set, y~ = +1)."""
OUTLIER = -1
"""Code of an outlier clip (other machines; outlier set, y = -1)."""
ANOMALY = -2
"""Code of a real anomalous clip of the target machine (labelled set, y~ = -1)."""

DEFAULT_LAMBDA = 1.0
"""lambda of eq. (4) (Sec. IV-A: 1.0)."""
DEFAULT_ETA = 2.0
"""eta of eqs. (2)-(3) (Sec. IV-A: 2.0)."""
DEFAULT_EPSILON = 1e-6
"""Added to squared distances before inverting them (the paper's formula has none; 1e-6 as Deep SAD)."""

VARIANTS = ("bce", "dsad", "ddcsad", "bce+dsad", "bce+ddcsad")
"""The five losses compared in Table II (Sec. IV-A)."""


def check_variant(variant: str) -> str:
    """Return ``variant`` lower-cased, or raise ``ASDError`` when it is not one of :data:`VARIANTS`."""
    name = str(variant).strip().lower()
    if name not in VARIANTS:
        raise ASDError(f"ddcsad/losses.py: unknown loss variant {variant!r}; use one of {', '.join(VARIANTS)}")
    return name


def uses_bce(variant: str) -> bool:
    """True when the variant has the BCE term (and so a trained linear layer giving p)."""
    return check_variant(variant).startswith("bce")


def centroid_term(variant: str) -> str | None:
    """``"dsad"``, ``"ddcsad"`` or None: the metric-learning term of a variant."""
    name = check_variant(variant)
    if name.endswith("ddcsad"):
        return "ddcsad"
    if name.endswith("dsad"):
        return "dsad"
    return None


def label_parts(y):
    """Split label codes into the paper's sign and the labelled-set mask.

    Parameters
    ----------
    y : tensor [B]
        Codes ``NORMAL`` (+1), ``OUTLIER`` (-1) or ``ANOMALY`` (-2); any dtype.

    Returns
    -------
    sign : float32 tensor [B]
        +1 for normal clips, -1 for outliers and anomalies (y or y~ in eqs. 1-3).
    labelled : float32 tensor [B]
        1 for clips of the labelled set X~ (normal, anomaly), 0 for the outlier set X.
    """
    y = ops.reshape(ops.cast(y, "float32"), (-1,))
    sign = ops.where(y > 0, 1.0, -1.0)
    labelled = ops.cast(ops.not_equal(y, float(OUTLIER)), "float32")
    return sign, labelled


def squared_distance(z, c):
    """d = ||z - c||^2 for each row of ``z`` [B, D] and one centroid ``c`` [D]; returns [B]."""
    z = ops.cast(z, "float32")
    c = ops.reshape(ops.cast(c, "float32"), (1, -1))
    return ops.sum(ops.square(z - c), axis=-1)


def _signed_power(d, sign, epsilon):
    """||z - c||^(2 * sign) from the squared distance d: d for sign +1, 1 / (d + epsilon) for sign -1."""
    return ops.where(sign > 0, d, 1.0 / (d + epsilon))


def bce_loss(p, y, from_logits=False, clip=1e-7):
    """Binary cross-entropy of eq. (1).

    L_BCE = -1/(N+M) { sum_{i=1..N} log(1 - p_i)
                       + sum_{j=1..M} [ u(y~_j) log p~_j + (1 - u(y~_j)) log(1 - p~_j) ] }

    with u(y) = 1 for y > 0 and 0 otherwise. Outliers (y = -1) and real anomalies (y~ = -1) both take
    the log(1 - p) term; normal clips take log p. There is no eta in eq. (1).

    Parameters
    ----------
    p : tensor [B] or [B, 1]
        Posterior probability of "normal" (sigmoid output), or its logit when ``from_logits``.
    y : tensor [B]
        Label codes (see the module docstring).
    from_logits : bool
        Compute log p = -softplus(-l) and log(1 - p) = -softplus(l) from logits l (numerically stable).
    clip : float
        Probabilities are clipped to [clip, 1 - clip] before the log when ``from_logits`` is False.

    Returns
    -------
    scalar tensor
    """
    p = ops.reshape(ops.cast(p, "float32"), (-1,))
    sign, _ = label_parts(y)
    target = ops.cast(sign > 0, "float32")  # u(y)
    if from_logits:
        log_p = -ops.softplus(-p)
        log_1mp = -ops.softplus(p)
    else:
        p = ops.clip(p, clip, 1.0 - clip)
        log_p = ops.log(p)
        log_1mp = ops.log(1.0 - p)
    return -ops.mean(target * log_p + (1.0 - target) * log_1mp)


def dsad_loss(z, y, c, eta=DEFAULT_ETA, epsilon=DEFAULT_EPSILON):
    """Deep semi-supervised anomaly detection loss, eq. (2), with one centroid c (of the normal clips).

    L_DSAD = 1/(N+M) { sum_{i=1..N} ||z_i - c||^(2 y_i) + eta sum_{j=1..M} ||z~_j - c||^(2 y~_j) }

    ||.||^(2y) is the squared distance for y = +1 and its inverse 1 / (d + epsilon) for y = -1; eta
    weights the labelled set X~ (normal clips and real anomalies), not the outliers.

    Parameters
    ----------
    z : tensor [B, D]
        Embeddings from the encoder.
    y : tensor [B]
        Label codes.
    c : tensor [D]
        Centroid of the normal clips (c_p of the model).
    eta, epsilon : float

    Returns
    -------
    scalar tensor
    """
    sign, labelled = label_parts(y)
    weight = labelled * eta + (1.0 - labelled)
    term = _signed_power(squared_distance(z, c), sign, epsilon)
    return ops.mean(weight * term)


def ddcsad_loss(z, y, c_p, c_n, eta=DEFAULT_ETA, epsilon=DEFAULT_EPSILON):
    """Deep double-centroids semi-supervised anomaly detection loss, eq. (3).

    L_DDCSAD = 1/(N+M) sum_{i=1..N} { ||z_i - c_p||^(2 y_i) + ||z_i - c_n||^(-2 y_i) }
             + eta/(N+M) sum_{j=1..M} { ||z~_j - c_p||^(2 y~_j) + ||z~_j - c_n||^(-2 y~_j) }

    So a normal clip pays d_p + 1 / (d_n + epsilon) (pulled to c_p, pushed from c_n) and an outlier or
    anomaly pays 1 / (d_p + epsilon) + d_n (pushed from c_p, pulled to c_n), with d_p, d_n the squared
    distances to the normal centroid c_p and the outlier centroid c_n; eta weights the labelled set.

    Parameters
    ----------
    z : tensor [B, D]
    y : tensor [B]
        Label codes.
    c_p, c_n : tensor [D]
        Centroids of the normal clips and of the outlier clips.
    eta, epsilon : float

    Returns
    -------
    scalar tensor
    """
    sign, labelled = label_parts(y)
    weight = labelled * eta + (1.0 - labelled)
    term = _signed_power(squared_distance(z, c_p), sign, epsilon) + _signed_power(
        squared_distance(z, c_n), -sign, epsilon
    )
    return ops.mean(weight * term)


def loss_components(
    p,
    z,
    y,
    c_p,
    c_n=None,
    variant="bce+ddcsad",
    lam=DEFAULT_LAMBDA,
    eta=DEFAULT_ETA,
    epsilon=DEFAULT_EPSILON,
    from_logits=False,
):
    """The loss of one of the five variants and its parts.

    * ``"bce"``: L_BCE (eq. 1);
    * ``"dsad"``: L_DSAD (eq. 2) with c = c_p;
    * ``"ddcsad"``: L_DDCSAD (eq. 3);
    * ``"bce+dsad"``: L_BCE + lambda L_DSAD (eq. 4 with eq. 2 in place of eq. 3);
    * ``"bce+ddcsad"``: L = L_BCE + lambda L_DDCSAD (eq. 4).

    Parameters
    ----------
    p : tensor [B] or None
        Posteriors (or logits with ``from_logits``); unused (may be None) for "dsad" and "ddcsad".
    z : tensor [B, D] or None
        Embeddings; unused (may be None) for "bce".
    y : tensor [B]
        Label codes.
    c_p, c_n : tensor [D]
        Centroids (c_n only for the DDCSAD variants).
    variant : str
        One of :data:`VARIANTS`.
    lam, eta, epsilon : float
    from_logits : bool
        Passed to :func:`bce_loss`.

    Returns
    -------
    dict
        ``loss`` (the total), ``bce`` (0 when unused) and ``centroid`` (the DSAD or DDCSAD term before
        lambda; 0 when unused), all scalar tensors.
    """
    name = check_variant(variant)
    zero = ops.zeros((), dtype="float32")
    bce = bce_loss(p, y, from_logits=from_logits) if uses_bce(name) else zero
    term = centroid_term(name)
    if term == "dsad":
        centroid = dsad_loss(z, y, c_p, eta=eta, epsilon=epsilon)
    elif term == "ddcsad":
        if c_n is None:
            raise ASDError(f"ddcsad/losses.py: variant {name!r} needs the outlier centroid c_n; pass c_n")
        centroid = ddcsad_loss(z, y, c_p, c_n, eta=eta, epsilon=epsilon)
    else:
        centroid = zero
    if name == "bce":
        total = bce
    elif name in ("dsad", "ddcsad"):
        total = centroid
    else:
        total = bce + lam * centroid
    return {"loss": total, "bce": bce, "centroid": centroid}


def multitask_loss(
    p,
    z,
    y,
    c_p,
    c_n=None,
    variant="bce+ddcsad",
    lam=DEFAULT_LAMBDA,
    eta=DEFAULT_ETA,
    epsilon=DEFAULT_EPSILON,
    from_logits=False,
):
    """Eq. (4), L = L_BCE + lambda L_DDCSAD, or any other of the five variants; returns a scalar.

    See :func:`loss_components` for the arguments.
    """
    return loss_components(
        p, z, y, c_p, c_n, variant=variant, lam=lam, eta=eta, epsilon=epsilon, from_logits=from_logits
    )["loss"]


__all__ = [
    "NORMAL",
    "OUTLIER",
    "ANOMALY",
    "DEFAULT_LAMBDA",
    "DEFAULT_ETA",
    "DEFAULT_EPSILON",
    "VARIANTS",
    "check_variant",
    "uses_bce",
    "centroid_term",
    "label_parts",
    "squared_distance",
    "bce_loss",
    "dsad_loss",
    "ddcsad_loss",
    "loss_components",
    "multitask_loss",
]
