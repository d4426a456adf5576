"""Mixed precision against float32 for the sub-cluster AdaCos network (Wilkinghoff 2020, Table I), side by side.

Trains the same network (same initial weights, same batches: one seed) once per precision policy for the same
number of epochs on the same random 313 x 128 features, then prints

- steady training throughput (clips/s, median of the epochs after the first, which traces the graph) and the
  ratio of each mixed policy to float32;
- the difference of the anomaly scores of a fixed set of clips (score = 1 - the largest cosine between the
  clip's embedding and its class's learned centres, the "model output"-type score of Table II): mean and
  largest absolute difference to float32, and the Spearman rank correlation (1 = same ranking).

    python benchmarks/precision.py [--clips 512] [--epochs 4] [--subclusters 4] [--policies mixed_bfloat16]

The heads and the loss stay float32 under every policy (subcluster_adacos/layers.py). On a CPU without bf16
units mixed precision can be slower than float32; the figures are the machine's, not a promise.
"""
import argparse
import time

import numpy as np


def _train(policy, features, labels, args):
    import keras

    from subcluster_adacos.layers import normalized_centers
    from subcluster_adacos.network import build_training_model, embedding_model, head_layer
    from subcluster_adacos.training import make_dataset, steps_per_epoch

    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_training_model(args.classes, n_subclusters=args.subclusters, seed=0)
    model.compile(optimizer=keras.optimizers.Adam())
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    dataset = make_dataset(features, labels, args.classes, args.batch_size, seed=0, repeat=True)  # as training._fit
    model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps_per_epoch(len(features), args.batch_size),
              verbose=0, callbacks=[Timer()])
    probe = features[: args.probe]
    embeddings = np.asarray(embedding_model(model).predict(probe, batch_size=args.batch_size, verbose=0),
                            dtype=np.float64)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    centres = normalized_centers(head_layer(model))[labels[: args.probe]]  # (probe, S, dim)
    scores = 1.0 - np.max(np.einsum("nd,nsd->ns", embeddings, centres), axis=1)
    keras.config.set_dtype_policy("float32")
    steady = times[1:] or times
    return len(features) / float(np.median(steady)), scores, times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--classes", type=int, default=41)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--subclusters", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--probe", type=int, default=256, help="clips whose scores are compared")
    parser.add_argument("--policies", nargs="+", default=["mixed_bfloat16"],
                        choices=["mixed_bfloat16", "mixed_float16"])
    args = parser.parse_args()

    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.clips, 313, 128)).astype(np.float32)
    labels = rng.integers(0, args.classes, args.clips)
    results = {}
    for policy in ["float32"] + args.policies:
        results[policy] = _train(policy, features, labels, args)
        speed, _, times = results[policy]
        print(f"{policy:15s} {speed:8.1f} clips/s  (epoch times {', '.join(f'{t:.2f}' for t in times)} s)", flush=True)
    base_speed, base_scores, _ = results["float32"]
    for policy in args.policies:
        speed, scores, _ = results[policy]
        diff = np.abs(scores - base_scores)
        print(f"{policy} / float32: {speed / base_speed:.2f}x throughput; scores of {args.probe} clips: mean |diff| "
              f"{diff.mean():.2e}, max |diff| {diff.max():.2e}, Spearman {spearmanr(scores, base_scores)[0]:.4f}")
    print(f"clips={args.clips}, S={args.subclusters}, batch={args.batch_size}, epochs={args.epochs}")


if __name__ == "__main__":
    main()
