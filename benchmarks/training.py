"""Training and embedding-extraction throughput, side by side (issue 16).

For the 2020 network (Wilkinghoff 2020, Table I; sub-cluster AdaCos head, mixup, balanced class weights)
and for the 2021 two-head network (sections + attribute classes), on the same random 313 x 128 features:

* ``ours``: the project's training path (``build_training_model`` / ``build_multi_head_training_model``,
  ``training._compile``, the endless ``tf.data`` pipeline of ``make_multi_label_dataset(repeat=True)`` with
  ``steps_per_epoch``, as ``training._fit`` runs it);
* ``keras3-arrays``: the same Keras 3 model and compile, ``fit`` on in-memory arrays;
* ``tf-keras``: the same network and head written with ``tf_keras`` (Keras 2,
  ``benchmarks/keras2_reference.py``), ``fit`` on arrays; skipped with a message when ``tf-keras`` is not
  installed.

Every variant trains in its own fresh Python process, and the processes are interleaved (ours, keras3-arrays,
tf-keras, ours, ...) ``--repeats`` times, so that a shared, drifting CPU load falls on all of them alike.
Per process: every epoch's wall time and process CPU time (all threads), the first epoch (tracing included),
and the steady speed = clips per second of the median of the epochs after the first two; then embedding
extraction (``predict`` of the embedding network over all clips; median of 3 passes after a warm-up pass).
Printed: each repeat with the 1-minute load average at its start, the median over repeats per variant, and
the ratios ours / tf-keras and ours / keras3-arrays of those medians, in wall time and in CPU time (clips per
CPU second: the work done, less sensitive to other processes on the machine than wall time).

    python benchmarks/training.py [--clips 960] [--epochs 6] [--repeats 2] [--networks 2020,2021]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

VARIANTS = ("ours", "keras3-arrays", "tf-keras")
NETWORKS = {"2020": (41,), "2021": (42, 199)}


def _load():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _timer(base):
    class EpochTimer(base):
        def on_train_begin(self, logs=None):
            self.times, self.cpu = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.start_cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)
            self.cpu.append(time.process_time() - self.start_cpu)

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
    """Train one variant; returns (epoch timer, trained model or embedding network)."""
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
        return timer, embedder

    import keras

    from subcluster_adacos.network import build_multi_head_training_model, build_training_model
    from subcluster_adacos.training import TrainingConfig, _compile, make_multi_label_dataset, steps_per_epoch

    keras.utils.set_random_seed(0)
    if len(classes) == 1:
        model = build_training_model(classes[0], n_subclusters=args.subclusters, class_weights=weights[0], seed=0)
    else:
        model = build_multi_head_training_model(classes, n_subclusters=args.subclusters, class_weights=weights,
                                                seed=0)
    _compile(model, TrainingConfig(batch_size=args.batch_size))
    timer = _timer(keras.callbacks.Callback)
    if variant == "ours":
        dataset = make_multi_label_dataset(features, labels, classes, args.batch_size, seed=0, repeat=True)
        model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps_per_epoch(len(features), args.batch_size),
                  verbose=0, shuffle=False, callbacks=[timer])
    else:
        model.fit({"features": features, **one_hots}, batch_size=args.batch_size, epochs=args.epochs,
                  shuffle=True, verbose=0, callbacks=[timer])
    return timer, model


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


def _child(args):
    """One variant and network in this process; prints one JSON line."""
    classes = NETWORKS[args.child_network]
    features, labels = _data(args.clips, classes)
    load = _load()
    timer, trained = _train(args.child, features, labels, classes, args)
    result = {"load": load, "times": timer.times, "cpu": timer.cpu}
    if not args.no_extraction:
        result["extract"] = _extraction(args.child, trained, features, args.batch_size)
    print("RESULT " + json.dumps(result), flush=True)


def _run_child(variant, network, args):
    command = [sys.executable, os.path.abspath(__file__), "--child", variant, "--child-network", network,
               "--clips", str(args.clips), "--epochs", str(args.epochs), "--subclusters", str(args.subclusters),
               "--batch-size", str(args.batch_size)] + (["--no-extraction"] if args.no_extraction else [])
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        sys.exit(f"benchmarks/training.py: the {variant} run ({network} network) failed: {tail[0]}")
    return json.loads(lines[-1][len("RESULT "):])


def _steady(values, clips):
    return clips / float(np.median(values[2:]))


def _run_line(repeat, variant, run, args):
    """One process's figures, printed as soon as it finishes."""
    line = (f"  repeat {repeat} {variant:14s} load {run['load']:5.2f}  train {_steady(run['times'], args.clips):6.1f}"
            f" clips/s, {_steady(run['cpu'], args.clips):6.1f} clips/CPU-s  first epoch {run['times'][0]:6.2f} s"
            f"  epochs {', '.join(f'{t:.2f}' for t in run['times'])} s")
    if "extract" in run:
        line += f"  extract {args.clips / run['extract']:6.1f} clips/s"
    print(line, flush=True)


def _report(order, runs, args):
    """Medians over repeats and the ratios of those medians."""
    speed, cpu_speed, first, extract = {}, {}, {}, {}
    for variant in order:
        rows = runs[variant]
        speed[variant] = float(np.median([_steady(run["times"], args.clips) for run in rows]))
        cpu_speed[variant] = float(np.median([_steady(run["cpu"], args.clips) for run in rows]))
        first[variant] = float(np.median([run["times"][0] for run in rows]))
        if all("extract" in run for run in rows):
            extract[variant] = float(np.median([args.clips / run["extract"] for run in rows]))
    print(f"  median of {args.repeats} repeat(s):")
    for variant in order:
        text = (f"    {variant:14s} train {speed[variant]:6.1f} clips/s, {cpu_speed[variant]:6.1f} clips/CPU-s, "
                f"first epoch {first[variant]:6.2f} s")
        if variant in extract:
            text += f", extract {extract[variant]:6.1f} clips/s"
        print(text)
    for other in ("tf-keras", "keras3-arrays"):
        if "ours" in speed and other in speed:
            text = (f"  ours / {other}: training {speed['ours'] / speed[other]:.2f}x (wall), "
                    f"{cpu_speed['ours'] / cpu_speed[other]:.2f}x (CPU); first epoch {first['ours']:.2f} s vs "
                    f"{first[other]:.2f} s")
            if "ours" in extract and other in extract:
                text += f"; extraction {extract['ours'] / extract[other]:.2f}x"
            print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=960)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per variant, interleaved")
    parser.add_argument("--subclusters", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--networks", default="2020,2021", help="comma-separated: 2020 (41 classes), "
                        "2021 (two heads, 42 + 199 classes)")
    parser.add_argument("--order", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--no-extraction", action="store_true", help="skip the embedding-extraction timing")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--child-network", choices=sorted(NETWORKS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 5:
        parser.error("--epochs must be >= 5 (steady speed = median of the epochs after the first two)")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.child:
        return _child(args)
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
    print(f"clips={args.clips}, epochs={args.epochs}, repeats={args.repeats}, S={args.subclusters}, "
          f"batch={args.batch_size}, order={','.join(order)} (each run a fresh process), "
          f"1-min load average at start {_load():.2f}", flush=True)
    for network in networks:
        print(f"\n{network} network, classes {'+'.join(map(str, NETWORKS[network]))}:", flush=True)
        runs = {variant: [] for variant in order}
        for repeat in range(1, args.repeats + 1):
            for variant in order:
                runs[variant].append(_run_child(variant, network, args))
                _run_line(repeat, variant, runs[variant][-1], args)
        _report(order, runs, args)
    print(f"1-min load average at end {_load():.2f}")


if __name__ == "__main__":
    main()
