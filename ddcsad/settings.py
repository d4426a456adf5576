"""Settings of the ``ddcsad`` command (Kuroyanagi et al., DCASE 2020): the frozen config with the paper's section
or table beside every field, the quick variant, the choices of each setting and the parse helpers of
``--losses`` and ``--anomalies``.

Keras-free (imported by ``run_dcase2020.py --help``); the driver is :mod:`ddcsad.experiments`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from asdcore.errors import ASDError


VARIANTS = ("bce", "dsad", "ddcsad", "bce+dsad", "bce+ddcsad")
"""The five losses of Table II (= ``ddcsad.losses.VARIANTS``; repeated so that ``--help`` needs no Keras)."""

PAPER_COUNTS = (0, 1, 2, 4, 8, 16, 32, 64)
"""Numbers of real anomalies per ID of Fig. 2 (Sec. IV-C: "[1, 2, 4, ..., 64]"; 0 = Table II)."""


SAVE_MODELS = ("base", "all", "none")
AMPLITUDE_LEVELS = ("machine", "type", "clip", "none")  # = ddcsad.data.AMPLITUDE_LEVELS (no Keras for --help)
AMPLITUDE_METHODS = ("waveform", "logmel_shift")  # = ddcsad.data.AMPLITUDE_METHODS
EPOCH_DEFINITIONS = ("normal", "dataset")  # = ddcsad.data.EPOCH_DEFINITIONS
MINMAX_OVER = ("crops", "clips")  # = ddcsad.scoring.MINMAX_OVER


# ------------------------------------------------------------------------------------------ settings

def parse_losses(text) -> tuple:
    """``"bce,bce+ddcsad"`` -> ("bce", "bce+ddcsad"); "all" = the five of Table II."""
    if isinstance(text, (list, tuple)):
        items = [str(t) for t in text]
    else:
        items = [t for t in str(text).replace(" ", "").split(",") if t]
    if items == ["all"]:
        return VARIANTS
    out = []
    for item in items:
        name = item.strip().lower()
        if name not in VARIANTS:
            raise ASDError(f"--losses: unknown loss {item!r}; use a comma-separated subset of {','.join(VARIANTS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ASDError("--losses: give at least one loss")
    return tuple(out)


def parse_counts(text) -> tuple:
    """``"0,1,2,4,...,64"`` -> (0, 1, 2, 4, 8, 16, 32, 64); "paper" = those counts. Sorted, unique."""
    if isinstance(text, (list, tuple)):
        items = [str(t) for t in text]
    else:
        items = [t for t in str(text).replace(" ", "").split(",") if t]
    if items == ["paper"]:
        return PAPER_COUNTS
    values = []
    for i, item in enumerate(items):
        if item == "...":
            if len(values) < 1 or i + 1 >= len(items):
                raise ASDError("--anomalies: '...' needs a number before and after it (e.g. 0,1,2,4,...,64)")
            last, stop = values[-1], int(items[i + 1])
            step = 2 * last if last > 0 else 1
            while step < stop:
                values.append(step)
                step *= 2
            continue
        try:
            values.append(int(item))
        except ValueError:
            raise ASDError(f"--anomalies: {item!r} is not a number; give counts like 0,1,2,4,...,64") from None
    if not values or min(values) < 0:
        raise ASDError("--anomalies: give counts >= 0, e.g. 0 or 0,1,2,4,...,64")
    return tuple(sorted(set(values)))


def _check_config(c) -> None:
    if c.amplitude_norm not in AMPLITUDE_LEVELS:
        raise ASDError(f"amplitude_norm {c.amplitude_norm!r}: use one of {', '.join(AMPLITUDE_LEVELS)}")
    if c.amplitude_method not in AMPLITUDE_METHODS:
        raise ASDError(f"amplitude_method {c.amplitude_method!r}: use one of {', '.join(AMPLITUDE_METHODS)}")
    if not c.adam_epsilon > 0:
        raise ASDError(f"adam_epsilon {c.adam_epsilon}: use a small positive number (paper's Adam: 1e-8)")
    if c.epoch not in EPOCH_DEFINITIONS:
        raise ASDError(f"epoch {c.epoch!r}: use one of {', '.join(EPOCH_DEFINITIONS)}")
    if c.minmax_over not in MINMAX_OVER:
        raise ASDError(f"minmax_over {c.minmax_over!r}: use one of {', '.join(MINMAX_OVER)}")
    if c.save_models not in SAVE_MODELS:
        raise ASDError(f"save_models {c.save_models!r}: use one of {', '.join(SAVE_MODELS)}")
    if c.anomaly_label not in ("anomaly", "outlier"):
        raise ASDError(f"anomaly_label {c.anomaly_label!r}: use anomaly or outlier")
    if not (c.alpha in ("table1", "validation") or (isinstance(c.alpha, (int, float)) and 0 <= c.alpha <= 1)):
        raise ASDError(f"alpha {c.alpha!r}: use table1, validation or a number between 0 and 1")
    if c.bn_calibration_batches < 0:
        raise ASDError(f"bn_calibration_batches {c.bn_calibration_batches}: use 0 (initial statistics) or more")
    if c.feature_frames is not None and c.amplitude_method == "waveform" and c.amplitude_norm != "none":
        raise ASDError("amplitude_method waveform needs every frame of every clip (feature_frames: null); "
                       "use amplitude_method: logmel_shift with feature_frames")
    if c.feature_frames is not None and c.feature_frames < c.crop_frames:
        raise ASDError(f"feature_frames {c.feature_frames} < crop_frames {c.crop_frames}: use null (every frame)")
    if c.iterations < 1 or c.finetune_iterations < 1:
        raise ASDError("iterations and finetune_iterations must be at least 1")
    bad_parts = [p for p in c.parts if p not in ("dev", "eval")]
    if bad_parts or not c.parts:
        raise ASDError(f"parts {c.parts}: use dev and/or eval")


@dataclass(frozen=True)
class DDCSADConfig:
    """Every setting of the experiment; defaults = the paper (section or table beside each)."""

    # --- what is run
    losses: tuple = VARIANTS  # Table II columns (Sec. IV-A)
    anomalies: tuple = (0,)  # Fig. 2 counts per ID (Sec. IV-C: 1, 2, 4, ..., 64); 0 = Table II only
    parts: tuple = ("dev", "eval")  # IDs that get models: dev = validation (alpha), eval = Table II/Fig. 2
    machine_types: tuple = ()  # empty = all six
    units_per_type: int | None = None  # None = every ID (Sec. IV-A: one model per machine ID)
    # --- features (Sec. IV-A)
    n_mels: int = 128  # "128-dimensional logarithmic Mel filter-banks"
    n_fft: int = 1024  # "1,024-sample windows"
    hop_length: int = 512  # "a hop-size of 512 samples"
    feature_frames: int | None = None  # None: every frame ("divided ... each sample's ... series"); 313: last 313
    amplitude_norm: str = "machine"  # "each machine's amplitude ... mean of 0 and variance of 1" (ddcsad.data)
    amplitude_method: str = "waveform"  # features of the standardised waves; "logmel_shift": scale only (faster)
    # --- network (Sec. IV-A)
    backbone: str = "resnet38"  # "we used the ResNet38 framework ... proposed for PANNs"; "light" = CPU demo
    light_channels: tuple = (16, 32, 64, 128)  # light encoder only (not in the paper)
    light_input_pool: int = 1  # light encoder only: average-pool the input by this factor first
    # --- losses (Sec. III, IV-A)
    lam: float = 1.0  # lambda of eq. (4)
    eta: float = 2.0  # eta of eqs. (2)-(3)
    epsilon: float = 1e-6  # inside the inverse distances (not in the paper; Deep SAD's value)
    dsad_centroid: str = "fixed"  # DSAD's c: computed once from the random network (Sec. II-B, IV-A)
    anomaly_label: str = "anomaly"  # real anomalies in the labelled set X~ (eta-weighted) or "outlier"
    # --- optimisation (Sec. IV-A, IV-C)
    iterations: int = 4000  # "We set the total number of iterations to 4,000"
    finetune_iterations: int = 2000  # "halved the total number of iterations to 2,000" (with anomalies)
    encoder_learning_rate: float = 1e-4  # "0.0001 for the convolutional layer"
    head_learning_rate: float = 1e-3  # "0.001 for the full connection layer"
    halve_every: int = 1000  # "multiplied the learning rate by 0.5 after every 1,000 iterations"
    adam_epsilon: float = 1e-8  # "We used Adam [19]": Kingma and Ba's (and PyTorch's) epsilon; Keras' is 1e-7
    batch_composition: tuple = (32, 32)  # normal : outlier; balanced, batch 64 as in Sec. IV-C
    batch_composition_anomalies: tuple = (32, 31, 1)  # normal : outlier : anomaly (Sec. IV-C)
    crop_frames: int = 256  # random training crops of the inference crop length (open choice)
    epoch: str = "normal"  # centroid updates: one pass over the normal clips (authors' public sampler; ddcsad.data)
    steps_per_epoch: int | None = None  # overrides `epoch` when set
    centroid_crops: int = 1  # crops per clip for the centroids (1 = the centre 256 frames)
    bn_calibration_batches: int = 10  # BN statistics of training batches before the first centroids; 0 = initial
    # --- scoring (Sec. III eq. 5, IV-A, Table I)
    n_crops: int = 10  # "divided ... into ten sections ... frame length was equal to 256"
    alpha: object = "table1"  # "table1", "validation" (chosen on dev IDs) or a number in [0, 1]
    minmax_over: str = "crops"  # d' over all crops (literal reading) or over clip means ("clips")
    # --- few real anomalies (Sec. IV-C)
    anomaly_pool: int = 64  # "64 samples were randomly selected" per ID
    anomaly_pool_max_fraction: float = 0.75  # never pool more than this share of an ID's anomalies
    # --- outputs and speed
    save_models: str = "none"  # weights files: "none" (no later step reads them), "base", "all"
    inference_batch_size: int = 64

    def __post_init__(self):
        """Normalise the flags' and YAML's forms and reject bad values with one line (before any data is read)."""
        for name, value in (("losses", parse_losses(self.losses)), ("anomalies", parse_counts(self.anomalies)),
                            ("parts", tuple(self.parts)), ("machine_types", tuple(self.machine_types or ()))):
            object.__setattr__(self, name, value)
        _check_config(self)


PAPER_CONFIG = DDCSADConfig()

QUICK_CONFIG = dataclasses.replace(
    PAPER_CONFIG,
    units_per_type=1,  # the first ID of each machine type in each part: 12 models per loss
    backbone="light",
    light_channels=(8, 16, 32),
    light_input_pool=2,
    iterations=40,
    finetune_iterations=20,
    halve_every=10,  # the paper's schedule shape: four halvings-intervals
    batch_composition=(8, 8),
    batch_composition_anomalies=(8, 7, 1),
    save_models="base",  # light models: ~40 kB of weights each
)
"""``--quick``: a light CNN and 40 iterations of 16-clip batches, one ID per type and part (CPU minutes)."""
