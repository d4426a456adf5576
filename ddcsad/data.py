"""Training data of the BCE + DDCSAD system (Kuroyanagi et al., Sec. IV-A and IV-C): which clips a
machine ID's model sees, the per-machine amplitude normalisation, balanced mini-batches of random crops,
the few real anomalies of Fig. 2, and what an "epoch" is.

One model per machine ID (Sec. IV-A: "We performed learning for each particular machine ID")
-------------------------------------------------------------------------------------------
* **normal** (label ``NORMAL`` = +1): the training clips of the target ID;
* **outliers** (label ``OUTLIER`` = -1, pseudo-anomalies): the training clips of the other IDs of the same
  machine type and of every ID of the other machine types *of the same source data set* -- MIMII (fan,
  pump, slider, valve) or ToyADMOS (ToyCar, ToyConveyor) -- "the normal data of other IDs of the target
  machine type, and the normal data of all the IDs of the other machines in the same data set, were used
  as outlier data [12]". "All the IDs" is read literally: the training clips of the development IDs *and*
  of the evaluation IDs (the "additional training set") are outliers for every model, whatever part the
  target ID belongs to. Test clips are never outliers.
  **DCASE 2021-2025 data** (adaptation ``outliers = "all types"``, docs/later-dcase.md): the later editions
  have no MIMII/ToyADMOS grouping (new types, one section per type from 2023 on), so one model is trained per
  *section* and the outliers are the training clips of every other section of every machine type of the data
  (both parts).
* **anomalies** (label ``ANOMALY`` = -2, only for Fig. 2): real anomalous test clips of the target ID moved
  into the training data (:func:`anomaly_pool`).

Amplitude normalisation (Sec. IV-A)
-----------------------------------
"we calculated each machine's amplitude values, normalized them to have a mean of 0 and variance of 1,
and then extracted 128-dimensional logarithmic Mel filter-banks". The paper calls each ID a "machine"
("seven or eight different machines of that type, and ID information is provided to indicate exactly
which machine the data belongs to"), so the default (``level="machine"``) standardises the waveform of
every clip of a machine ID, ``x' = (x - mu) / sigma``, with the mean and standard deviation of all
samples of that ID's *training* clips; the same two numbers are applied to the ID's test clips (the ID
of a test clip is known). The log-mel features are computed from the standardised waveforms
(``method="waveform"``, :func:`amplitude_affine` and ``wave_affine`` of
:func:`asdcore.pipeline.load_features`: a feature store of its own, keyed by the statistics).

Other readings, each a setting: ``level="type"`` (statistics per machine type), ``"clip"`` (each clip by
its own statistics, as Fujimura et al. do), ``"none"``. The authors' later code (Serial-OE) standardises
every clip a model sees with one mean and standard deviation of the target machine type's training
waves; for one model that is one affine map of all its inputs, which shifts every log-mel value by the
same number of dB (the mean aside) -- which the per-mel-bin batch normalisation at the input of both
encoders (``bn0``) removes, so that reading trains like ``"none"``.

``method="logmel_shift"`` is a faster approximation that needs no second feature store: standardising a
waveform and then taking ``10 log10`` of its mel power spectrum adds ``-10 log10(sigma^2)`` dB to every
log-mel value, so the cached log-mel features are shifted by that number (:func:`normalise_amplitude`).
It keeps the mean ``mu`` (a DC offset), which reaches the lowest mel bin through the window's leakage
into the second FFT bin (15.6 Hz), and applies the ``1e-10`` floor of the log before the shift. The
statistics need the waveforms: :func:`waveform_statistics` reads each clip once
(``asdcore.audio.load_many``) and caches ``(samples, sum, sum of squares)`` per clip in a small CSV
file keyed by the file's path, size and modification time.

Mini-batches (Sec. IV-A, IV-C)
------------------------------
:class:`BalancedBatches` draws every batch with a fixed composition: 32 normal : 32 outlier clips without
anomalies ("balanced"; the paper gives the ratio only for Fig. 2, where one of the 64 slots holds an
anomaly: 32 : 31 : 1 normal : outlier : anomaly, "so that there was always one anomalous data sample
representing the outlier class in each mini-batch"; we take the same batch size of 64 without
anomalies). Each group is drawn from its own stream that goes through the group's clips in a random
order and reshuffles after each pass, so every clip is used equally often.

Crops (open choice): the paper scores ten overlapping 256-frame crops of each clip but does not say
how training inputs were cut. We train on one random 256-frame crop per drawn clip (start uniform over
the clip's ``frames - 256 + 1`` positions: 58 for a 10 s clip), the length the network sees at inference.

Whole clips (Sec. IV-A: "we divided the number of frames in each sample's acoustic feature series into
ten sections")
---------------------------------------------------------------------------------------------------
The features keep *every* frame of every clip (``LogMelConfig(n_frames=None)``, not the shared default
of the last 313 frames, which drops ~1 s of an ~11 s ToyCar clip); clips of different lengths are
stacked NaN-padded at the end (``ragged="pad"`` of :func:`asdcore.features.extract_features`) and each
clip's own length (:func:`asdcore.features.valid_frames`) bounds its crops: training crops, the centre
crop of the centroids and the ten scoring crops (:func:`crop_starts`, :func:`gather_crops`) never read
padding. Clips shorter than one crop are repeated to the crop length (:func:`fit_short_clips`), as the
core repeat-pads short waves.

Epoch (the paper is silent; the authors' public code decides)
-------------------------------------------------------------
The centroids c_p and c_n "are updated at each epoch by recalculating the centroids using the entire
training data set" while training counts iterations (4000); the paper does not say how long an epoch
is. The authors' later public code (Serial-OE, ``OutlierBalancedBatchSampler``) ends an epoch when the
target's normal clips have been used once, at the batch's normal share; so does the default here,
``epoch="normal"``: ``steps_per_epoch = ceil(normal clips / normal clips per batch)``
(:func:`steps_per_epoch`; ~1000 / 32 = 32 iterations for a DCASE 2020 ID, ~125 centroid updates in 4000
iterations, each a pass over the ~25k clips of the training set: forward passes of about three times
the cost of the training itself). ``epoch="dataset"`` counts one pass over the unit's whole training
set, normal and outlier clips, at the batch size (about 400 iterations for a MIMII ID, ~10 updates).
The centroids are embeddings of one fixed crop per clip (the centre 256 frames,
:func:`centroid_dataset`), computed in inference mode by :class:`ddcsad.model.CentroidUpdate`; before
the first ones the BN statistics are set from training batches
(:meth:`ddcsad.model.DDCSADModel.calibrate_batch_norm`).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd

from asdcore.amplitude import waveform_statistics
from asdcore.errors import ASDError
from ddcsad.losses import ANOMALY, NORMAL, OUTLIER

__all__ = [
    "SOURCE_DATASETS",
    "source_dataset",
    "UnitSets",
    "select_units",
    "unit_sets",
    "anomaly_pool",
    "AMPLITUDE_LEVELS",
    "waveform_statistics",
    "amplitude_table",
    "amplitude_offsets_db",
    "amplitude_normalisation",
    "normalise_amplitude",
    "amplitude_affine",
    "AMPLITUDE_METHODS",
    "BalancedBatches",
    "crop_starts",
    "gather_crops",
    "fit_short_clips",
    "steps_per_epoch",
    "centroid_dataset",
    "EPOCH_DEFINITIONS",
]

SOURCE_DATASETS = {
    "MIMII": ("fan", "pump", "slider", "valve"),
    "ToyADMOS": ("ToyCar", "ToyConveyor"),
}
"""The two source data sets of DCASE 2020 task 2 and their machine types (Sec. IV-A)."""

AMPLITUDE_LEVELS = ("machine", "type", "clip", "none")
AMPLITUDE_METHODS = ("waveform", "logmel_shift")
EPOCH_DEFINITIONS = ("normal", "dataset")


def source_dataset(machine_type: str) -> str:
    """``"MIMII"`` or ``"ToyADMOS"``: the data set a DCASE 2020 machine type comes from."""
    for name, types in SOURCE_DATASETS.items():
        if machine_type in types:
            return name
    known = ", ".join(t for types in SOURCE_DATASETS.values() for t in types)
    raise ASDError(f"ddcsad/data.py: machine type {machine_type!r} is not a DCASE 2020 type ({known}); "
                   "the outlier sets are defined for DCASE 2020 only")


# ------------------------------------------------------------------------------------------- clip sets

@dataclass
class UnitSets:
    """Row positions (into the clip table) of the clips one machine ID's model uses.

    Attributes
    ----------
    part, machine_type, unit : str
    normal, outlier, anomaly : numpy.ndarray of int
        Training clips with the labels ``NORMAL``, ``OUTLIER`` and ``ANOMALY`` (anomaly empty unless a pool
        is given).
    test : numpy.ndarray of int
        The ID's test clips that are evaluated (the pooled anomalies are left out).
    """

    part: str
    machine_type: str
    unit: str
    normal: np.ndarray
    outlier: np.ndarray
    anomaly: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def key(self) -> str:
        """``<machine_type>/<unit>`` (as :func:`asdcore.pipeline.unit_keys`)."""
        return f"{self.machine_type}/{self.unit}"

    def train_indices_and_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """All training rows and their label codes (normal, outlier, anomaly)."""
        idx = np.concatenate([self.normal, self.outlier, self.anomaly]).astype(np.int64)
        y = np.concatenate([np.full(len(self.normal), NORMAL), np.full(len(self.outlier), OUTLIER),
                            np.full(len(self.anomaly), ANOMALY)]).astype(np.int32)
        return idx, y


def select_units(table: pd.DataFrame, parts=("dev", "eval"), units_per_type: int | None = None,
                 machine_types=None) -> list[tuple[str, str, str]]:
    """The machine IDs that get a model: ``[(part, machine_type, unit), ...]`` in table order.

    Only IDs with training clips are listed. ``units_per_type`` keeps the first ``n`` IDs (sorted) of
    each machine type in each part (quick runs); None keeps all. ``machine_types`` restricts the types.
    """
    train = table[table["split"] == "train"]
    rows = train[["part", "machine_type", "unit"]].drop_duplicates()
    rows = rows[rows["part"].isin(list(parts))]
    if machine_types:
        rows = rows[rows["machine_type"].isin(list(machine_types))]
    rows = rows.sort_values(["part", "machine_type", "unit"], kind="stable")
    if units_per_type is not None:
        rows = rows.groupby(["part", "machine_type"], sort=False).head(int(units_per_type))
    return [tuple(r) for r in rows.itertuples(index=False, name=None)]


def unit_sets(table: pd.DataFrame, machine_type: str, unit: str, pool: dict | None = None,
              n_anomalies: int = 0) -> UnitSets:
    """Normal, outlier (and anomalous) training clips and evaluated test clips of one machine ID.

    Parameters
    ----------
    table : DataFrame
        The clip table (its row positions are returned).
    machine_type, unit : str
        The target ID, e.g. ``"fan", "id_00"``.
    pool : dict, optional
        ``{"<type>/<unit>": row positions}`` from :func:`anomaly_pool`; the ID's pooled clips leave the
        evaluated test set whatever ``n_anomalies`` is.
    n_anomalies : int
        How many of the pooled anomalies (the first ones) join the training data (Fig. 2: 1, 2, 4, ...).
    """
    mtypes = table["machine_type"].to_numpy()
    units = table["unit"].to_numpy()
    train = (table["split"] == "train").to_numpy()
    target = (mtypes == machine_type) & (units == unit)
    if "year" in table.columns and len(table) and int(table["year"].iloc[0]) != 2020:
        source = "the data set"  # later editions: every other section of every type (module docstring)
        same_source = np.ones(len(table), dtype=bool)
    else:
        source = source_dataset(machine_type)
        same_source = np.isin(mtypes, SOURCE_DATASETS[source])
    normal = np.flatnonzero(train & target)
    outlier = np.flatnonzero(train & same_source & ~target)
    if len(normal) == 0:
        raise ASDError(f"ddcsad/data.py: {machine_type} {unit} has no training clips; check the data root")
    if len(outlier) == 0:
        raise ASDError(f"ddcsad/data.py: {machine_type} {unit} has no outlier clips (no other ID of {source} "
                       "has training clips); the binary classifier needs other machines' clips")
    parts = table.loc[target, "part"].unique()
    part = str(parts[0]) if len(parts) else ""
    pooled = np.asarray((pool or {}).get(f"{machine_type}/{unit}", np.zeros(0, np.int64)), np.int64)
    if n_anomalies > len(pooled):
        raise ASDError(f"ddcsad/data.py: {machine_type} {unit} has {len(pooled)} pooled anomalies, "
                       f"{n_anomalies} asked for; use fewer")
    test = np.setdiff1d(np.flatnonzero(~train & target), pooled)
    return UnitSets(part, machine_type, unit, normal, outlier, pooled[: int(n_anomalies)], test)


def anomaly_pool(table: pd.DataFrame, units, size: int = 64, max_fraction: float = 0.5,
                 seed: int = 0) -> dict:
    """Per machine ID a random set of labelled anomalous test clips moved to the training data (Sec. IV-C).

    The paper moves 64 random anomalous clips of each ID ("from the validation and evaluation data's
    anomalous data") to the training data; they leave the evaluation set for every model compared in
    Fig. 2. When an ID has few anomalous clips (the synthetic sets hold 2-20), at most ``max_fraction``
    of them are pooled so that the evaluation keeps anomalies: ``min(size, floor(max_fraction * n))``.

    Parameters
    ----------
    units : iterable of (part, machine_type, unit)
    size : int
        Pool size per ID (paper: 64).
    seed : int
        The draw depends on the seed and the ID only.

    Returns
    -------
    dict
        ``"<type>/<unit>" -> row positions`` in drawing order (training with k anomalies uses the first k,
        so the sets are nested: 1 in 2 in 4 ...).
    """
    pools = {}
    test_anomaly = ((table["split"] == "test") & (table["label"] == "anomaly")).to_numpy()
    mtypes, unit_col = table["machine_type"].to_numpy(), table["unit"].to_numpy()
    for _part, machine_type, unit in units:
        rows = np.flatnonzero(test_anomaly & (mtypes == machine_type) & (unit_col == unit))
        n_pool = min(int(size), int(math.floor(max_fraction * len(rows))))
        digest = hashlib.sha256(f"{seed}|{machine_type}|{unit}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        pools[f"{machine_type}/{unit}"] = rng.permutation(rows)[:n_pool].astype(np.int64)
    return pools


# ------------------------------------------------------------------------------ amplitude normalisation

def _group_keys(table: pd.DataFrame, level: str) -> np.ndarray:
    if level == "machine":
        return (table["machine_type"].astype(str) + "/" + table["unit"].astype(str)).to_numpy()
    if level == "type":
        return table["machine_type"].astype(str).to_numpy()
    if level == "clip":
        return table["path"].astype(str).to_numpy()
    raise ASDError(f"ddcsad/data.py: amplitude level {level!r}; use one of {', '.join(AMPLITUDE_LEVELS)}")


def amplitude_table(table: pd.DataFrame, stats: pd.DataFrame, level: str = "machine") -> pd.DataFrame:
    """Mean and standard deviation of the waveform samples per group (``level``), from training clips.

    ``stats`` are :func:`waveform_statistics` of the rows of ``table`` (aligned). For ``level="clip"``
    every clip is its own group (training and test clips). Returns ``group, n_clips, n_samples, mean,
    std`` with population statistics over all samples of the group's clips.
    """
    if len(stats) != len(table):
        raise ASDError("ddcsad/data.py: waveform statistics are not aligned with the clip table")
    keys = _group_keys(table, level)
    use = np.ones(len(table), bool) if level == "clip" else (table["split"] == "train").to_numpy()
    frame = pd.DataFrame({"group": keys[use], "n": stats["n"].to_numpy()[use],
                          "sum": stats["sum"].to_numpy()[use], "sumsq": stats["sumsq"].to_numpy()[use]})
    frame = frame.dropna()
    agg = frame.groupby("group", sort=True).agg(n_clips=("n", "size"), n_samples=("n", "sum"),
                                                total=("sum", "sum"), total_sq=("sumsq", "sum"))
    mean = agg["total"] / agg["n_samples"]
    var = np.maximum(agg["total_sq"] / agg["n_samples"] - mean ** 2, 0.0)
    out = pd.DataFrame({"group": agg.index, "n_clips": agg["n_clips"].astype(int).to_numpy(),
                        "n_samples": agg["n_samples"].astype(np.int64).to_numpy(),
                        "mean": mean.to_numpy(), "std": np.sqrt(var).to_numpy()})
    return out.reset_index(drop=True)


def amplitude_offsets_db(table: pd.DataFrame, amplitudes: pd.DataFrame | None, level: str = "machine",
                         floor: float = 1e-12) -> np.ndarray:
    """Per row of ``table`` the log-mel shift ``-10 log10(sigma^2)`` (dB) of its group's standardisation.

    ``level="none"`` gives zeros. A group without statistics (no readable training clip) raises.
    """
    if level == "none":
        return np.zeros(len(table), np.float32)
    keys = _group_keys(table, level)
    std = dict(zip(amplitudes["group"], amplitudes["std"]))
    missing = sorted({k for k in keys if k not in std})
    if missing:
        raise ASDError(f"ddcsad/data.py: no amplitude statistics for {missing[:3]} (no readable training "
                       "clip); check the data or use amplitude normalisation 'none'")
    sigma = np.array([std[k] for k in keys], np.float64)
    return (-10.0 * np.log10(np.maximum(sigma ** 2, floor))).astype(np.float32)


def amplitude_normalisation(table: pd.DataFrame, level: str = "machine", cache_dir=None, sr: int = 16000,
                            skip_bad_files: bool = False) -> tuple[np.ndarray, pd.DataFrame]:
    """Log-mel offsets (dB) per row of ``table`` and the statistics they come from.

    Reads the waveforms that the level needs (training clips; every clip for ``"clip"``) through
    :func:`waveform_statistics` (cached). Returns ``(offsets_db [rows], amplitudes)`` where
    ``amplitudes`` is :func:`amplitude_table` (empty for ``"none"``).
    """
    if level not in AMPLITUDE_LEVELS:
        raise ASDError(f"ddcsad/data.py: amplitude level {level!r}; use one of {', '.join(AMPLITUDE_LEVELS)}")
    if level == "none":
        return np.zeros(len(table), np.float32), pd.DataFrame(columns=["group", "n_clips", "n_samples", "mean", "std"])
    need = np.ones(len(table), bool) if level == "clip" else (table["split"] == "train").to_numpy()
    read = waveform_statistics(table.loc[need, "path"].tolist(), cache_dir=cache_dir, sr=sr,
                               skip_bad_files=skip_bad_files)
    stats = pd.DataFrame({"path": table["path"].to_numpy(), "n": np.nan, "sum": np.nan, "sumsq": np.nan})
    stats.loc[need, ["n", "sum", "sumsq"]] = read[["n", "sum", "sumsq"]].to_numpy()
    amplitudes = amplitude_table(table, stats, level)
    return amplitude_offsets_db(table, amplitudes, level), amplitudes


def amplitude_affine(table: pd.DataFrame, amplitudes: pd.DataFrame | None, level: str = "machine"):
    """Per row of ``table`` the ``(offsets, scales)`` that standardise its waveform, ``(x - mean) / std``,
    with its group's statistics (:func:`amplitude_table`): zero mean and unit variance over the group's
    training samples (Sec. IV-A). ``level="none"``: zeros and ones. For ``level="clip"`` a clip without
    statistics (unreadable, skipped later with ``--skip-bad-files``) gets (0, 1); a machine or type
    without any readable training clip raises."""
    n = len(table)
    if level == "none":
        return np.zeros(n), np.ones(n)
    keys = _group_keys(table, level)
    mean = dict(zip(amplitudes["group"], amplitudes["mean"]))
    std = dict(zip(amplitudes["group"], amplitudes["std"]))
    missing = sorted({k for k in keys if k not in std})
    if missing and level != "clip":
        raise ASDError(f"ddcsad/data.py: no amplitude statistics for {missing[:3]} (no readable training "
                       "clip); check the data or use amplitude normalisation 'none'")
    offsets = np.array([mean.get(k, 0.0) for k in keys], np.float64)
    scales = np.array([std.get(k, 1.0) for k in keys], np.float64)
    return offsets, np.where(scales > 0, scales, 1.0)


def normalise_amplitude(features: np.ndarray, offsets_db: np.ndarray) -> np.ndarray:
    """Add each clip's offset (dB) to all its log-mel values; in place when ``features`` is writable, else
    (a read-only memory-mapped feature store) into a new array. Returns the result."""
    if len(features) != len(offsets_db):
        raise ASDError(f"ddcsad/data.py: {len(offsets_db)} offsets for {len(features)} clips")
    if hasattr(features, "shifted"):  # the memory-mapped store of clips of different lengths: added on reading
        return features.shifted(offsets_db)
    shift = np.asarray(offsets_db, np.float32)[:, None, None]
    if not features.flags.writeable:
        return np.asarray(features) + shift
    features += shift
    return features


# ----------------------------------------------------------------------------------------------- batches

def crop_starts(lengths, crop_frames: int = 256, n_crops: int = 10) -> np.ndarray:
    """Starts ``[clips, n_crops]`` of ``n_crops`` evenly spaced crops over each clip's own frames.

    Crop ``c`` of a clip of ``L`` frames starts at ``round(c (L - crop_frames) / (n_crops - 1))``: the
    first crop at the start, the last one ending at the clip's last frame (Sec. IV-A: the clip "divided
    into ten sections, with overlap allowed so that the frame length was equal to 256"). One crop
    (``n_crops=1``) is the centred one, start ``(L - crop_frames) // 2``.
    """
    lengths = np.asarray(lengths, np.int64).reshape(-1)
    if len(lengths) and lengths.min() < crop_frames:
        raise ASDError(f"ddcsad/data.py: a clip has {int(lengths.min())} frames, crops need {crop_frames}; "
                       "use shorter crops (crop_frames) or fit_short_clips")
    if n_crops == 1:
        return ((lengths - crop_frames) // 2)[:, None]
    c = np.arange(int(n_crops))
    return np.round(c[None, :] * (lengths - crop_frames)[:, None] / (int(n_crops) - 1)).astype(np.int64)


def gather_crops(features, rows, lengths, n_crops: int = 10, crop_frames: int = 256) -> np.ndarray:
    """``[len(rows), n_crops, crop_frames, mels]`` float32 crops of :func:`crop_starts` of the clips ``rows``.

    ``lengths`` are the valid frames of those clips (aligned with ``rows``).
    """
    rows = np.asarray(rows, np.int64)
    starts = crop_starts(lengths, crop_frames, n_crops)
    idx = starts[:, :, None] + np.arange(crop_frames)[None, None, :]
    return np.asarray(features[rows[:, None, None], idx], np.float32)


def fit_short_clips(features, lengths, crop_frames: int):
    """Repeat the frames of clips shorter than ``crop_frames`` up to ``crop_frames``.

    Returns ``(features, lengths)``; ``features`` is widened (NaN) when no clip reaches ``crop_frames``
    frames and is changed in place otherwise; a memory-mapped store of clips of different lengths
    (:class:`asdcore.feature_store.RaggedFeatures`) repeats them on reading instead (the same values).
    """
    lengths = np.asarray(lengths, np.int64).copy()
    short = np.flatnonzero(lengths < crop_frames)
    if not len(short):
        return features, lengths
    if np.any(lengths[short] < 1):
        raise ASDError("ddcsad/data.py: a clip has no frames; check the recordings (--skip-bad-files)")
    if hasattr(features, "looped"):
        looped = features.looped(crop_frames)
        return looped, looped.lengths
    if features.shape[1] < crop_frames:
        wider = np.full((features.shape[0], crop_frames, features.shape[2]), np.nan, np.float32)
        wider[:, : features.shape[1]] = features
        features = wider
    for i in short:
        features[i, :crop_frames] = features[i, np.arange(crop_frames) % lengths[i]]
        lengths[i] = crop_frames
    return features, lengths



def steps_per_epoch(sets: UnitSets, batch_size: int, epoch: str = "dataset", normal_per_batch: int | None = None,
                    explicit: int | None = None) -> int:
    """Iterations per epoch (module docstring): ``explicit`` if given; ``"dataset"``: ceil(training clips /
    batch size); ``"normal"``: ceil(normal clips / normal clips per batch)."""
    if explicit:
        return max(1, int(explicit))
    if epoch == "dataset":
        n = len(sets.normal) + len(sets.outlier) + len(sets.anomaly)
        return max(1, math.ceil(n / int(batch_size)))
    if epoch == "normal":
        return max(1, math.ceil(len(sets.normal) / int(normal_per_batch or batch_size)))
    raise ASDError(f"ddcsad/data.py: epoch definition {epoch!r}; use one of {', '.join(EPOCH_DEFINITIONS)}")


class _Stream:
    """Row positions in random order, reshuffled after each pass (every clip used equally often)."""

    def __init__(self, rows, rng):
        self.rows = np.asarray(rows, np.int64)
        self.rng = rng
        self.order = np.zeros(0, np.int64)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = self.rng.permutation(self.rows), 0
            k = min(n, len(self.order) - self.pos)
            out.append(self.order[self.pos: self.pos + k])
            self.pos += k
            n -= k
        return np.concatenate(out) if out else np.zeros(0, np.int64)


class BalancedBatches:
    """Endless mini-batches with a fixed normal : outlier (: anomaly) composition, random crops.

    Parameters
    ----------
    features : numpy.ndarray
        ``[clips, frames, mels]`` log-mel features of the whole table (rows addressed by position).
    sets : UnitSets
        The unit's clips.
    composition : tuple of int
        ``(normal, outlier)`` or ``(normal, outlier, anomaly)`` clips per batch; paper: (32, 32) and, with
        anomalies, (32, 31, 1). A zero anomaly share with anomalies present leaves them out.
    crop_frames : int
        Frames of each random crop (256).
    seed : int
    lengths : array of int, optional
        Valid frames of every clip of ``features`` (default: all frames of the array); each crop starts
        uniformly over its clip's ``lengths - crop_frames + 1`` positions.

    Each batch is ``(x [B, crop_frames, mels] float32, y [B] int32)`` with the label codes of
    :mod:`ddcsad.losses`; ``anomaly_label`` chooses the code of real anomalies (``ANOMALY``: labelled
    set, weighted by eta; ``OUTLIER``: counted as plain outliers).
    """

    def __init__(self, features, sets: UnitSets, composition=(32, 32), crop_frames: int = 256, seed: int = 0,
                 anomaly_label: int = ANOMALY, lengths=None):
        self.features = features
        comp = tuple(int(c) for c in composition)
        if len(comp) == 2:
            comp = comp + (0,)
        if len(comp) != 3 or min(comp) < 0 or comp[0] < 1 or comp[1] < 1:
            raise ASDError(f"ddcsad/data.py: batch composition {composition}; give (normal, outlier[, anomaly]) "
                           "with at least one normal and one outlier clip")
        if comp[2] and len(sets.anomaly) == 0:
            comp = (comp[0], comp[1] + comp[2], 0)  # no anomalies: the slot goes to the outliers
        self.composition = comp
        self.lengths = (np.full(len(features), features.shape[1], np.int64) if lengths is None
                        else np.asarray(lengths, np.int64))
        used = np.concatenate([sets.normal, sets.outlier, sets.anomaly]).astype(np.int64)
        shortest = int(self.lengths[used].min()) if len(used) else int(features.shape[1])
        if shortest < crop_frames:
            raise ASDError(f"ddcsad/data.py: a clip has {shortest} frames, crops need {crop_frames}; "
                           "use shorter crops")
        self.crop_frames = int(crop_frames)
        self.rng = np.random.default_rng(seed)
        self.streams = [_Stream(sets.normal, self.rng), _Stream(sets.outlier, self.rng),
                        _Stream(sets.anomaly, self.rng)]
        self.codes = (NORMAL, OUTLIER, int(anomaly_label))
        self.device = None

    @property
    def batch_size(self) -> int:
        return int(sum(self.composition))

    def on_device(self) -> bool:
        """Copy the features onto the accelerator when ``ASD_DEVICE_DATA`` says so
        (:func:`asdcore.input_pipeline.place_features`; clips of different lengths stay on the host): the
        crops of every later batch are then gathered there (the same crops as on the host). Returns whether
        they were placed."""
        from asdcore.input_pipeline import place_features

        if hasattr(self.features, "starts"):  # a ragged store: crops are read from the file
            return False
        self.device = place_features(self.features, what="DDCSAD training features")
        return self.device is not None

    def draw(self):
        """The next batch's ``(rows, crop starts, labels)``: the composition's clips from each stream, one
        uniform crop start per clip."""
        rows, labels = [], []
        for stream, n, code in zip(self.streams, self.composition, self.codes):
            if n:
                rows.append(stream.take(n))
                labels.append(np.full(n, code, np.int32))
        rows = np.concatenate(rows)
        starts = self.rng.integers(0, self.lengths[rows] - self.crop_frames + 1)
        return rows, starts, np.concatenate(labels)

    def next_batch(self):
        """``(x, y)``: NumPy arrays, or with the features on the accelerator ``x`` a device tensor."""
        rows, starts, labels = self.draw()
        if self.device is not None:
            return self.device.crops(rows, starts, self.crop_frames), labels
        idx = starts[:, None] + np.arange(self.crop_frames)[None, :]
        x = self.features[rows[:, None], idx]
        return x.astype(np.float32, copy=False), labels

    def __iter__(self):
        while True:
            yield self.next_batch()

    def dataset(self):
        """The endless stream for ``fit``: a ``tf.data.Dataset`` of ``(x, y)`` batches (prefetched) on
        TensorFlow; elsewhere a :class:`keras.utils.PyDataset` that draws the same batches (the crops
        gathered on the accelerator when the features were placed there, :meth:`on_device`)."""
        from asdcore.input_pipeline import on_tensorflow

        if not on_tensorflow():
            return _EndlessBatches(self)
        import tensorflow as tf

        mels = int(self.features.shape[2])
        spec = (tf.TensorSpec((self.batch_size, self.crop_frames, mels), tf.float32),
                tf.TensorSpec((self.batch_size,), tf.int32))
        return tf.data.Dataset.from_generator(self.__iter__, output_signature=spec).prefetch(2)


class _EndlessBatches(keras.utils.PyDataset):
    """:class:`BalancedBatches` as an endless PyDataset (off TensorFlow): item ``k`` is the sampler's next
    batch, drawn in order by one background thread (the sampler's random stream is sequential)."""

    def __init__(self, sampler):
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
        self.sampler = sampler

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return self.sampler.next_batch()


def centroid_dataset(features, sets: UnitSets, crop_frames: int = 256, batch_size: int = 64,
                     n_crops: int = 1, lengths=None):
    """A finite dataset of ``(x, y)`` over the unit's whole training set, for the centroids: a
    ``tf.data.Dataset`` on TensorFlow, a re-iterable of NumPy batches elsewhere.

    Each normal, outlier (and anomalous, which the centroids ignore) training clip gives its centre crop
    (``n_crops=1``) or ``n_crops`` evenly spaced crops (:func:`crop_starts`, over each clip's own
    ``lengths``), so c_p / c_n are the mean embeddings of those crops.
    """
    idx, y = sets.train_indices_and_labels()
    keep = y != ANOMALY  # they enter neither centroid
    idx, y = idx[keep], y[keep]
    mels = int(features.shape[2])
    lengths = np.full(len(features), features.shape[1], np.int64) if lengths is None else np.asarray(lengths)
    crop_starts(lengths[idx], crop_frames, 1)  # every clip long enough, or one clear error now
    per_batch = max(1, int(batch_size) // max(1, int(n_crops)))

    def generate():
        for s in range(0, len(idx), per_batch):
            rows = idx[s: s + per_batch]
            x = gather_crops(features, rows, lengths[rows], n_crops, crop_frames).reshape(-1, crop_frames, mels)
            yield x, np.repeat(y[s: s + per_batch], n_crops)

    from asdcore.input_pipeline import on_tensorflow

    if not on_tensorflow():
        return _Reiterable(generate)
    import tensorflow as tf

    spec = (tf.TensorSpec((None, crop_frames, mels), tf.float32), tf.TensorSpec((None,), tf.int32))
    return tf.data.Dataset.from_generator(generate, output_signature=spec)


class _Reiterable:
    """``iter()`` starts ``generate()`` anew: one pass per iteration (the centroids are recomputed every epoch)."""

    def __init__(self, generate):
        self.generate = generate

    def __iter__(self):
        return self.generate()
