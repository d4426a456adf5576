"""A training killed after an epoch and continued from its backup (asdcore.keras_utils.EpochBackup) ends with
the weights of an uninterrupted training: same batches (the pipeline starts at the resumed epoch), same
optimizer state, same mixup draws."""
import keras
import numpy as np
import pytest

from asdcore.keras_utils import EpochBackup, reset_for_unit
from subcluster_adacos.training import TrainingConfig, make_dataset, train_model

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(40, 32, 16)).astype("float32")
LABELS = np.arange(40) % 4


def _weights(model) -> np.ndarray:
    return np.concatenate([keras.ops.convert_to_numpy(v).ravel() for v in model.trainable_variables])


def _train(epochs, folder):
    reset_for_unit(3)  # what the runner does before every unit, in a fresh process too
    model, _ = train_model(FEATURES, LABELS, 4, TrainingConfig(epochs=epochs, batch_size=16, checkpoint_every=100),
                           model_dir=folder, seed=3, verbose=0)
    return model


def test_dataset_started_at_an_epoch_gives_that_epochs_batches():
    def rows(dataset, n_batches):
        batches = list(dataset.take(n_batches))
        return [b["features"].numpy()[:, 0, 0].tolist() for b in batches]

    features = np.repeat(np.arange(10, dtype=np.float32), 2).reshape(10, 2, 1)
    make = lambda start: make_dataset(features, np.arange(10) % 3, 3, 4, seed=5, repeat=True, start_epoch=start)
    three_epochs = rows(make(0), 9)  # 3 batches an epoch
    assert rows(make(1), 6) == three_epochs[3:]
    assert rows(make(2), 3) == three_epochs[6:]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the training pipeline is tf.data")
def test_training_resumed_from_its_backup_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch):
    uninterrupted = _weights(_train(2, tmp_path / "plain"))
    assert not (tmp_path / "plain" / "backup").exists()  # removed when the training ended

    with monkeypatch.context() as patch:  # a process killed after epoch 1: its backup stays
        patch.setattr(EpochBackup, "on_train_end", lambda self, logs=None: None)
        after_one = _weights(_train(1, tmp_path / "killed"))
    assert EpochBackup.last_epoch(tmp_path / "killed" / "backup") == 1
    resumed = _train(2, tmp_path / "killed")
    np.testing.assert_array_equal(_weights(resumed), uninterrupted)
    assert not np.array_equal(after_one, uninterrupted)
    seeds = [keras.ops.convert_to_numpy(v) for v in resumed.variables if "seed_generator" in v.path]
    assert seeds and all(s[1] == 2 * 3 for s in seeds)  # 2 epochs x 3 batches of mixup draws, not 1 x 3
