"""Training and embedding-extraction throughput, side by side in one run (issue 16).

For the 2020 network (Wilkinghoff 2020, Table I; sub-cluster AdaCos head, mixup, balanced class weights)
and for the 2021 two-head network (sections + attribute classes), on the same random 313 x 128 features:

* ``ours``: the project's training path (``build_training_model`` / ``build_multi_head_training_model``,
  ``training._compile``, the ``tf.data`` pipeline ``make_multi_label_dataset``);
* ``keras3 fit on arrays``: the same Keras 3 model and compile, ``fit`` on in-memory arrays;
* ``tf-keras (Keras 2)``: the same network and head written with ``tf_keras``
  (``benchmarks/keras2_reference.py``), ``fit`` on arrays; skipped with a message when ``tf-keras`` is
  not installed.

Per variant: first-epoch time (tracing included), every epoch's time, and the steady speed = clips per
second of the median of the epochs after the first two. Then embedding extraction (``predict`` of the
embedding network over all clips; the median of 3 passes after a warm-up pass). Ratios are ours / tf-keras
and ours / keras3-on-arrays. Variants run in the order given by ``--order`` (run both orders: the shared
CPU drifts).

    python benchmarks/training.py [--clips 960] [--epochs 6] [--subclusters 1] [--networks 2020,2021]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

VARIANTS = ("ours", "keras3-arrays", "tf-keras")
NETWORKS = {"2020": (41,), "2021": (42, 199)}


def _timer(base):
    class EpochTimer(base):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    return EpochTimer()


def _data(n_clips, classes, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_clips, 313, 128)).astype(np.float32)
    labels = [np.arange(n_clips) % c for c in classes]  # every class present
    labels = [rng.permutation(lab) for lab in labels]
    return features, labels


def _names(n_heads):
    return ["labels"] + [f"labels_{i}" for i in range(1, n_heads)]


def _train(variant, features, labels, classes, args):
    """Train one variant; returns (epoch times, embedding network, predict function)."""
    from subcluster_adacos.training import balanced_class_weights

    # "balanced" class weights as in the experiments (None for a head when --clips leaves a class empty)
    weights = [balanced_class_weights(lab, c) if len(np.unique(lab)) == c else None
               for lab, c in zip(labels, classes)]
    one_hots = {n: np.eye(c, dtype=np.float32)[lab] for n, c, lab in zip(_names(len(classes)), classes, labels)}
    if variant == "tf-keras":
        import keras2_reference
        import tf_keras

        tf_keras.utils.set_random_seed(0)
        model, embedder = keras2_reference.build(classes[0] if len(classes) == 1 else classes, args.subclusters,
                                                 class_weights=weights[0] if len(classes) == 1 else weights)
        timer = _timer(tf_keras.callbacks.Callback)
        model.fit({"features": features, **one_hots}, batch_size=args.batch_size, epochs=args.epochs,
                  shuffle=True, verbose=0, callbacks=[timer])
        return timer.times, embedder

    import keras

    from subcluster_adacos.network import build_multi_head_training_model, build_training_model, embedding_model
    from subcluster_adacos.training import TrainingConfig, _compile, make_multi_label_dataset

    keras.utils.set_random_seed(0)
    if len(classes) == 1:
        model = build_training_model(classes[0], n_subclusters=args.subclusters, class_weights=weights[0], seed=0)
    else:
        model = build_multi_head_training_model(classes, n_subclusters=args.subclusters, class_weights=weights,
                                                seed=0)
    _compile(model, TrainingConfig(batch_size=args.batch_size))
    timer = _timer(keras.callbacks.Callback)
    if variant == "ours":
        dataset = make_multi_label_dataset(features, labels, classes, args.batch_size, seed=0)
        model.fit(dataset, epochs=args.epochs, verbose=0, shuffle=False, callbacks=[timer])
    else:
        model.fit({"features": features, **one_hots}, batch_size=args.batch_size, epochs=args.epochs,
                  shuffle=True, verbose=0, callbacks=[timer])
    return timer.times, model


def _extraction(variant, trained, features, batch_size):
    """Seconds of one embedding pass over ``features``: median of 3 after a warm-up pass."""
    if variant == "ours":
        from subcluster_adacos.scoring import extract_embeddings

        def run():
            return extract_embeddings(trained, features, batch_size)
    elif variant == "keras3-arrays":
        from subcluster_adacos.network import embedding_model

        embedder = embedding_model(trained)

        def run():
            return embedder.predict(features, batch_size=batch_size, verbose=0)
    else:
        def run():
            return trained.predict(features, batch_size=batch_size, verbose=0)
    run()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=960)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--subclusters", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--networks", default="2020,2021", help="comma-separated: 2020 (41 classes), "
                        "2021 (two heads, 42 + 199 classes)")
    parser.add_argument("--order", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--no-extraction", action="store_true", help="skip the embedding-extraction timing")
    args = parser.parse_args()
    if args.epochs < 5:
        parser.error("--epochs must be >= 5 (steady speed = median of the epochs after the first two)")
    order = [v.strip() for v in args.order.split(",") if v.strip()]
    unknown = set(order) - set(VARIANTS)
    if unknown:
        parser.error(f"--order: unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    if set(networks) - set(NETWORKS):
        parser.error(f"--networks: choose from {sorted(NETWORKS)}")

    import keras2_reference

    if "tf-keras" in order and not keras2_reference.available():
        print("tf-keras is not installed: the Keras 2 build is skipped (pip install tf-keras to include it)")
        order.remove("tf-keras")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"clips={args.clips}, epochs={args.epochs}, S={args.subclusters}, batch={args.batch_size}, "
          f"order={','.join(order)}, 1-min load average at start {load:.2f}")
    for network in networks:
        classes = NETWORKS[network]
        features, labels = _data(args.clips, classes)
        train_speed, first, extract_speed = {}, {}, {}
        print(f"\n{network} network, classes {'+'.join(map(str, classes))}:")
        for variant in order:
            times, trained = _train(variant, features, labels, classes, args)
            train_speed[variant] = args.clips / float(np.median(times[2:]))
            first[variant] = times[0]
            line = (f"  train   {variant:14s} {train_speed[variant]:7.1f} clips/s  first epoch {times[0]:6.2f} s"
                    f"  (epochs {', '.join(f'{t:.2f}' for t in times)} s)")
            if not args.no_extraction:
                extract_speed[variant] = args.clips / _extraction(variant, trained, features, args.batch_size)
                line += f"\n  extract {variant:14s} {extract_speed[variant]:7.1f} clips/s"
            print(line, flush=True)
        for other in ("tf-keras", "keras3-arrays"):
            if "ours" in train_speed and other in train_speed:
                ratio = train_speed["ours"] / train_speed[other]
                text = (f"  ours / {other}: training {ratio:.2f}x, first epoch "
                        f"{first['ours']:.2f} s vs {first[other]:.2f} s")
                if extract_speed:
                    text += f", extraction {extract_speed['ours'] / extract_speed[other]:.2f}x"
                print(text)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1-min load average at end {load:.2f}")


if __name__ == "__main__":
    main()
