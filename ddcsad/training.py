"""Training one machine ID's models: the one training path of every DDCSAD network (Sec. IV-A, IV-C).

:func:`train_id_models` is what one unit of work of ``run_dcase2020.py ddcsad`` runs: for one loss and one
machine ID it trains the model without anomalies (Table II) and then, from its weights, the fine-tuned
models with 1, 2, 4, ... real anomalies (Fig. 2). Everything it produces goes into one folder:

- ``outputs.npz``: per model (``k`` = anomalies, 0 = the Table II model) the evaluated test rows of the
  clip table (``rows_<k>``) and the logit and squared distance of each of their ten crops (``logit_<k>``,
  ``d_<k>``, ``[clips, crops]``): all that scoring (eq. 5), alpha selection and Fig. 2 need; for the
  Table II model also the test clips' embeddings (``embedding_0``, z averaged over the crops) and the
  centroids ``c_p``, ``c_n`` (the embedding maps, :mod:`ddcsad.maps`);
- ``model.weights.npz`` / ``anomalies<k>.weights.npz`` with ``save_models: base`` / ``all``;
- ``training_log.csv`` and ``tensorboard/`` (the Table II model), ``training_log_anomalies<k>.csv`` and
  ``tensorboard/anomalies<k>/`` (each fine-tuning): :func:`asdcore.keras_utils.training_callbacks`.

Seeds: the network's initial weights come from ``init_seed`` (the same for every loss and ID, so the
losses are compared from one initial network, as before the runner), the batch stream of the Table II
model from ``seed`` (the unit's, by name) and each fine-tuning's from ``seed_for(seed, "anomalies", k)``.
"""
from __future__ import annotations

import math
import shutil
import time

import keras
import numpy as np
from keras import layers

from asdcore.atomic_io import atomic_save_npz
from asdcore.errors import ASDError
from asdcore.experiment import seed_for
from asdcore.keras_utils import training_callbacks
from ddcsad import data
from ddcsad.backbones import build_light_encoder, build_resnet38
from ddcsad.losses import ANOMALY, OUTLIER
from ddcsad.model import CentroidUpdate, DDCSADModel, save_model_weights, weights_file_bytes
from ddcsad.scoring import crop_outputs

__all__ = ["build_encoder", "stop_after", "LossTrainer", "plan_model_files", "train_id_models", "load_outputs",
           "load_embeddings", "OUTPUTS_FILE"]

OUTPUTS_FILE = "outputs.npz"


def build_encoder(config, input_shape):
    """The feature extractor phi_z of the chosen backbone (``ddcsad.backbones``)."""
    if config.backbone == "resnet38":
        return build_resnet38(input_shape)
    if config.backbone != "light":
        raise ASDError(f"backbone {config.backbone!r}: use resnet38 or light")
    pool = int(config.light_input_pool)
    if pool <= 1:
        return build_light_encoder(input_shape, channels=config.light_channels)
    frames, mels = (int(s) for s in input_shape)
    inner = build_light_encoder((frames // pool, mels // pool, 1), channels=config.light_channels)
    inp = keras.Input((frames, mels), name="logmel")
    x = layers.Reshape((frames, mels, 1), name="add_channel")(inp)
    x = layers.AveragePooling2D(pool, name="input_pool")(x)
    return keras.Model(inp, inner(x), name=f"light_encoder_pool{pool}")


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, n: int):
        super().__init__()
        self.n, self.done = int(n), 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.n:
            self.model.stop_training = True


def stop_after(n: int) -> keras.callbacks.Callback:
    """Stop ``fit`` after exactly ``n`` iterations (the last epoch may be short; its ``on_epoch_end``,
    hence the centroid update, still runs)."""
    return _StopAfter(n)


def _optimizers(model) -> dict:
    """The two optimizers whose learning rates are logged (Sec. IV-A: 1e-4 encoder, 1e-3 linear layer)."""
    return {"learning_rate_encoder": model.encoder_optimizer, "learning_rate_linear": model.head_optimizer}


class LossTrainer:
    """One :class:`ddcsad.model.DDCSADModel` for one loss.

    The model is built and compiled from ``seed`` (its initial random weights); :meth:`reset` restores
    those weights (or given ones: fine-tuning, Sec. IV-C, starts from the ID's trained weights, centroids
    included) with fresh Adam states, so the learning-rate schedule restarts at 1e-4 / 1e-3.
    """

    def __init__(self, variant: str, config, input_shape, seed: int = 0):
        self.variant = variant
        self.config = config
        keras.utils.set_random_seed(seed)
        self.model = DDCSADModel(build_encoder(config, input_shape), variant=variant, lam=config.lam,
                                 eta=config.eta, epsilon=config.epsilon, dsad_centroid=config.dsad_centroid)
        self.model.compile(encoder_learning_rate=config.encoder_learning_rate,
                           head_learning_rate=config.head_learning_rate, halve_every=config.halve_every,
                           adam_epsilon=config.adam_epsilon)
        self.initial_weights = self.model.get_weights()

    def reset(self, weights=None) -> None:
        """Load ``weights`` (default: the initial random weights) and zero both optimizers' state."""
        self.model.set_weights(self.initial_weights if weights is None else weights)
        for optimizer in (self.model.encoder_optimizer, self.model.head_optimizer):
            for variable in optimizer.variables:
                variable.assign(np.zeros(variable.shape, dtype=variable.dtype))

    def train(self, features, sets, iterations: int, composition, seed: int, lengths=None, folder=None,
              name=None) -> dict:
        """Train on one ID's clips for ``iterations`` iterations; returns the last epoch's losses.

        ``lengths``: valid frames of every clip of ``features`` (default all frames). ``folder`` / ``name``:
        where the standard callbacks log (:func:`asdcore.keras_utils.training_callbacks`: per epoch the
        loss and its terms ``bce`` / ``centroid_loss``, both learning rates, and after each centroid update
        the distances of normal and outlier embeddings to c_p and c_n). Before the first
        centroids the BN statistics are calibrated on ``bn_calibration_batches`` batches of a second
        sampler (its own seed: the training stream is the same with and without calibration).
        """
        cfg = self.config
        label = ANOMALY if cfg.anomaly_label == "anomaly" else OUTLIER
        sampler = data.BalancedBatches(features, sets, composition, cfg.crop_frames, seed=seed, anomaly_label=label,
                                       lengths=lengths)
        calibration = None
        if cfg.bn_calibration_batches > 0:
            calibration = data.BalancedBatches(features, sets, composition, cfg.crop_frames, seed=seed + 104729,
                                               anomaly_label=label, lengths=lengths)
        steps = data.steps_per_epoch(sets, sampler.batch_size, cfg.epoch, sampler.composition[0],
                                     cfg.steps_per_epoch)
        epochs = int(math.ceil(iterations / steps))
        centroids = data.centroid_dataset(features, sets, cfg.crop_frames, cfg.inference_batch_size,
                                          cfg.centroid_crops, lengths=lengths)
        updater = CentroidUpdate(centroids, calibration=calibration, calibration_batches=cfg.bn_calibration_batches)
        callbacks = training_callbacks(folder, extra=[updater, stop_after(iterations)], name=name,
                                       optimizers=_optimizers)
        sampler.on_device()  # the crops gathered on the accelerator when the features fit there (not on TensorFlow)
        history = self.model.fit(sampler.dataset(), steps_per_epoch=steps, epochs=epochs, verbose=0, shuffle=False,
                                 callbacks=callbacks)
        last = {k: float(v[-1]) for k, v in history.history.items() if v}
        last.update(steps_per_epoch=steps, epochs=epochs, bn_calibration_batches=updater.calibrated_with,
                    centroid_updates=int(keras.ops.convert_to_numpy(self.model.centroid_updates)))
        return last


def plan_model_files(config, n_base: int, n_finetuned: int, model, folder, log=None) -> int:
    """How many weights files the run will write; logs their size and stops early when the disk is short.

    ``save_models``: ``"none"`` writes nothing, ``"base"`` one file per model trained without anomalies,
    ``"all"`` also one per fine-tuned model. Each file holds the model's variables only
    (:func:`ddcsad.model.save_model_weights`, at most :func:`ddcsad.model.weights_file_bytes`: ~274 MB
    for ResNet38, no optimizer state). Raises :class:`ASDError` (one line) when ``folder``'s free space is
    below the total plus 5 %.
    """
    n_files = {"none": 0, "base": n_base, "all": n_base + n_finetuned}[config.save_models]
    if n_files == 0:
        return 0
    each = weights_file_bytes(model)
    total = n_files * each
    free = shutil.disk_usage(folder).free
    if log is not None:
        log.info("saving %d weights files of %.3f MB each, %.2f GB in all, in the unit folders (save_models: %s; "
                 "%.1f GB free)", n_files, each / 1e6, total / 1e9, config.save_models, free / 1e9)
    if free < 1.05 * total:
        raise ASDError(f"save_models: {config.save_models} needs {total / 1e9:.1f} GB for {n_files} weights files "
                       f"but {folder} has {free / 1e9:.1f} GB free; set save_models: none (or base) in --config, "
                       "or use --out on a larger disk")
    return n_files


def _train_row(loss, sets, k, iterations, info, t0) -> dict:
    return {"loss": loss, "part": sets.part, "machine_type": sets.machine_type, "unit": sets.unit, "anomalies": k,
            "n_normal": len(sets.normal), "n_outlier": len(sets.outlier), "n_anomaly": len(sets.anomaly),
            "n_test": len(sets.test), "iterations": iterations, "steps_per_epoch": info["steps_per_epoch"],
            "centroid_updates": info["centroid_updates"], "final_loss": info.get("loss"),
            "final_bce": info.get("bce"), "final_centroid_loss": info.get("centroid_loss"),
            "seconds": round(time.time() - t0, 2)}


def train_id_models(config, loss: str, features, lengths, table, machine_type: str, unit: str, pool: dict,
                    counts, seed: int, init_seed: int, folder, log=None) -> list[dict]:
    """Train one loss on one machine ID, then fine-tune it with each count of real anomalies.

    Parameters
    ----------
    config : ddcsad.settings.DDCSADConfig
    features, lengths : the clip table's log-mel features ``[clips, frames, mels]`` and valid frames.
    table : DataFrame
        The clip table (row positions index ``features``).
    pool : dict
        ``"<type>/<unit>" -> pooled anomalous rows`` (:func:`ddcsad.data.anomaly_pool`); its clips leave
        the evaluated test set of the fine-tuned models.
    counts : sequence of int
        Anomaly counts > 0 to fine-tune with (empty: Table II only).
    seed, init_seed : int
        The batch stream's and the initial network's seeds.
    folder : path
        Where ``outputs.npz`` and the weights files go.

    Returns
    -------
    list of dict
        One ``training.csv`` row per trained model.
    """
    from pathlib import Path

    folder = Path(folder)
    input_shape = (config.crop_frames, int(features.shape[2]))
    t0 = time.time()
    trainer = LossTrainer(loss, config, input_shape, seed=init_seed)
    keras.utils.set_random_seed(seed)
    sets = data.unit_sets(table, machine_type, unit, pool)
    info = trainer.train(features, sets, config.iterations, config.batch_composition, seed=seed, lengths=lengths,
                         folder=folder)
    test = (table["split"] == "test").to_numpy() & (table["machine_type"] == machine_type).to_numpy() \
        & (table["unit"] == unit).to_numpy()
    test_rows = np.flatnonzero(test)  # every test clip of the ID (Table II); the pooled ones too
    outputs = {}

    def record(k, rows):
        logit, d, *z = crop_outputs(trainer.model, features, rows, config.n_crops, config.crop_frames,
                                    config.inference_batch_size, lengths=lengths, embeddings=k == 0)
        outputs.update({f"rows_{k}": np.asarray(rows, np.int64), f"logit_{k}": logit, f"d_{k}": d})
        if k == 0:  # the Table II model's test embeddings and centroids: the embedding maps
            outputs.update(embedding_0=z[0], c_p=np.asarray(trainer.model.c_p.numpy()),
                           c_n=np.asarray(trainer.model.c_n.numpy()))

    record(0, test_rows)
    if config.save_models != "none":
        save_model_weights(trainer.model, folder / "model.weights.npz")
    rows_log = [_train_row(loss, sets, 0, config.iterations, info, t0)]
    if log is not None:
        log.info("%s %s %s: %d it, loss %.4g, %d centroid updates, %.1f s", loss, machine_type, unit,
                 config.iterations, info.get("loss", float("nan")), info["centroid_updates"], time.time() - t0)
    base = trainer.model.get_weights()
    for k in counts:
        t0 = time.time()
        sets_k = data.unit_sets(table, machine_type, unit, pool, n_anomalies=k)
        trainer.reset(base)
        info = trainer.train(features, sets_k, config.finetune_iterations, config.batch_composition_anomalies,
                             seed=seed_for(seed, "anomalies", k), lengths=lengths, folder=folder, name=f"anomalies{k}")
        record(k, sets_k.test)
        if config.save_models == "all":
            save_model_weights(trainer.model, folder / f"anomalies{k}.weights.npz")
        rows_log.append(_train_row(loss, sets_k, k, config.finetune_iterations, info, t0))
        if log is not None:
            log.info("%s %s %s + %d anomalies: %d it, loss %.4g, %.1f s", loss, machine_type, unit, k,
                     config.finetune_iterations, info.get("loss", float("nan")), time.time() - t0)
    atomic_save_npz(folder / OUTPUTS_FILE, overwrite=True, **outputs)
    return rows_log


def load_embeddings(folder):
    """``(rows, z, c_p, c_n)`` of the Table II model of a folder written by :func:`train_id_models`: its
    test clips' rows, their embeddings (z averaged over the ten crops) and the two centroids; None for a
    folder written before the embeddings were kept."""
    from pathlib import Path

    with np.load(Path(folder) / OUTPUTS_FILE) as stored:
        if "embedding_0" not in stored.files:
            return None
        return stored["rows_0"], stored["embedding_0"], stored["c_p"], stored["c_n"]


def load_outputs(folder) -> dict:
    """``{k: (rows, logit, d)}`` of a folder written by :func:`train_id_models`."""
    from pathlib import Path

    with np.load(Path(folder) / OUTPUTS_FILE) as stored:
        counts = sorted(int(name.split("_")[1]) for name in stored.files if name.startswith("rows_"))
        return {k: (stored[f"rows_{k}"], stored[f"logit_{k}"], stored[f"d_{k}"]) for k in counts}
