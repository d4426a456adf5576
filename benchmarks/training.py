"""Training throughput: our tf.data input pipeline + model against a plain Keras ``fit`` on in-memory arrays.

Both train the same sub-cluster AdaCos network (Wilkinghoff 2020, Table I; mixup; S as given) on the same
random 313 x 128 features for the same number of epochs; the first epoch (graph tracing) is excluded.
Prints clips per second of each and the ratio. Target: ours >= 1.2x the plain baseline.

    python benchmarks/training.py [--clips 512] [--epochs 3] [--subclusters 1]
"""
import argparse
import time

import keras
import numpy as np


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--classes", type=int, default=41)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subclusters", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import tensorflow as tf

    from subcluster_adacos.network import build_training_model
    from subcluster_adacos.training import make_dataset

    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.clips, 313, 128)).astype(np.float32)
    labels = rng.integers(0, args.classes, args.clips)
    one_hot = np.eye(args.classes, dtype=np.float32)[labels]
    jit = bool(tf.config.list_logical_devices("GPU"))
    results = {}
    for name in ("plain keras fit on arrays", "ours: tf.data pipeline"):
        keras.utils.set_random_seed(0)
        model = build_training_model(args.classes, n_subclusters=args.subclusters, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(), jit_compile=jit)
        timer = EpochTimer()
        if name.startswith("plain"):
            model.fit({"features": features, "labels": one_hot}, batch_size=args.batch_size, epochs=args.epochs,
                      shuffle=True, verbose=0, callbacks=[timer])
        else:
            dataset = make_dataset(features, labels, args.classes, args.batch_size, seed=0)
            model.fit(dataset, epochs=args.epochs, verbose=0, callbacks=[timer])
        steady = timer.times[1:] or timer.times
        results[name] = args.clips / np.median(steady)
        print(f"{name:28s} {results[name]:8.1f} clips/s  (epoch times {', '.join(f'{t:.2f}' for t in timer.times)} s)")
    ratio = results["ours: tf.data pipeline"] / results["plain keras fit on arrays"]
    print(f"speed-up: {ratio:.2f}x (target >= 1.2x); device: {'GPU' if jit else 'CPU'}; "
          f"clips={args.clips}, S={args.subclusters}, batch={args.batch_size}")


if __name__ == "__main__":
    main()
