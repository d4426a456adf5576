"""The endless training dataset (``repeat=True``, issue 16) trains on exactly the batches of the one-pass
dataset: the same clips, in the same shuffled order, epoch by epoch."""
import keras
import numpy as np
import pytest

from subcluster_adacos.training import make_dataset, steps_per_epoch

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                     reason="records batches inside a TensorFlow training step")
N, BATCH, SEED = 10, 4, 3


def _clips():
    """Clip i's features are all i, so a batch tells which rows it holds."""
    return np.repeat(np.arange(N, dtype=np.float32), 2).reshape(N, 2, 1), np.arange(N) % 3


def _rows(batch):
    return batch["features"].numpy()[:, 0, 0].astype(int).tolist()


def test_steps_per_epoch_counts_the_last_partial_batch():
    assert [steps_per_epoch(n, 4) for n in (1, 4, 5, 8, 10)] == [1, 1, 2, 2, 3]


def test_repeated_dataset_gives_each_epoch_the_shuffle_stream_permutation_2e():
    """Epoch e of the endless dataset = batches of 4, 4, 2 cut from permutation 2e of a plain
    ``Dataset.range(N).shuffle(N, seed)`` (a new pass draws the next permutation): the order ``fit`` took
    from the one-pass dataset, which Keras 3 iterates twice per epoch (next test)."""
    import tensorflow as tf

    features, labels = _clips()
    plain = tf.data.Dataset.range(N).shuffle(N, seed=SEED, reshuffle_each_iteration=True)
    permutations = [np.array(list(plain.as_numpy_iterator())) for _ in range(8)]
    endless = iter(make_dataset(features, labels, 3, BATCH, seed=SEED, repeat=True))
    for epoch in range(4):
        batches = [next(endless) for _ in range(steps_per_epoch(N, BATCH))]
        order = np.concatenate([_rows(b) for b in batches])
        assert [len(_rows(b)) for b in batches] == [4, 4, 2]
        np.testing.assert_array_equal(np.sort(order), np.arange(N))  # every clip once
        np.testing.assert_array_equal(order, permutations[2 * epoch])
        for batch in batches:  # each clip keeps its own features and one-hot label
            np.testing.assert_array_equal(batch["features"].numpy(), features[_rows(batch)])
            np.testing.assert_array_equal(batch["labels"].numpy(), np.eye(3)[labels[_rows(batch)]])
    # Different epochs are shuffled differently (the permutations are not all the same).
    assert len({tuple(p) for p in permutations[::2][:4]}) > 1


@tensorflow_only
def test_fit_trains_on_the_same_batches_as_with_the_one_pass_dataset():
    import tensorflow as tf

    features, labels = _clips()

    def trained_batches(repeat):
        seen = []

        def record(rows):
            seen.append(rows.astype(int).tolist())
            return np.float32(0)

        class Recorder(keras.Model):
            def train_step(self, data):
                return {"zero": tf.numpy_function(record, [data["features"][:, 0, 0]], tf.float32)}

        inputs = {"features": keras.Input((2, 1), name="features"), "labels": keras.Input((3,), name="labels")}
        model = Recorder(inputs=inputs, outputs=keras.layers.Flatten()(inputs["features"]))
        model.compile(optimizer="sgd")
        dataset = make_dataset(features, labels, 3, BATCH, seed=SEED, repeat=repeat)
        steps = steps_per_epoch(N, BATCH) if repeat else None
        model.fit(dataset, epochs=4, steps_per_epoch=steps, verbose=0, shuffle=False)
        return seen

    one_pass, endless = trained_batches(False), trained_batches(True)
    assert len(one_pass) == 4 * steps_per_epoch(N, BATCH)
    assert endless == one_pass
