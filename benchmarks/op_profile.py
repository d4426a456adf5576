"""Where a training step's time goes, op type by op type (issue 16), from TensorFlow's profiler.

The 2020 network (41 classes, S = 1, batch 64, mixup, loss inside the model) or the 2021 two-head network
(``--network 2021``: 42 sections + 199 attribute classes) trains on one fixed batch with ``train_on_batch``: ours (Keras 3, ``subcluster_adacos.training._compile``: FusedAdam, slots built up front)
or the Keras 2 build of ``benchmarks/keras2_reference.py`` (needs ``pip install tf-keras``). After 4 warm-up
steps, ``--steps`` steps run under ``tf.profiler.experimental``; the trace (XPlane protocol buffer) is read
back and every op executed on the TensorFlow compute threads is summed by op type (the kernel name after
``:``, e.g. ``_MklNativeConv2DBackpropInput``, or the op name's last part). Printed per variant: the CPU
time of all ops per step (all threads together, so it can exceed the wall time), the ops per step, and the
``--top`` op types.

    python benchmarks/op_profile.py [k3] [k2] [--network 2020|2021] [--optimizer fused|keras] [--steps 10] [--top 15]
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


#: Classes of each head of the two networks.
NETWORKS = {"2020": (41,), "2021": (42, 199)}


def _model(variant, classes, optimizer="fused"):
    if variant == "k2":
        import keras2_reference

        return keras2_reference.build(classes[0] if len(classes) == 1 else classes)[0]
    from subcluster_adacos.network import build_multi_head_training_model, build_training_model
    from subcluster_adacos.training import TrainingConfig, _compile

    if len(classes) == 1:
        model = build_training_model(classes[0], seed=0)
    else:
        model = build_multi_head_training_model(list(classes), seed=0)
    _compile(model, TrainingConfig())
    if optimizer == "keras":  # Keras' own (unfused) Adam, built up front as _compile builds FusedAdam
        import keras

        model.compile(optimizer=keras.optimizers.Adam(learning_rate=TrainingConfig().learning_rate))
        model.optimizer.build(model.trainable_variables)
    return model


def op_times(logdir: str, steps: int) -> tuple[collections.Counter, collections.Counter]:
    """Milliseconds per step and executions per step of every op type in the profile under ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    millis, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.startswith("ExecutorState"):  # the executor's own span around the ops
                    continue
                kind = name.split(":")[-1] if ":" in name else re.sub(r"_\d+$", "", name.split("/")[-1])
                millis[kind] += event.duration_ps / 1e9 / steps
                counts[kind] += 1 / steps
    return millis, counts


def profile(variant: str, network: str, steps: int, top: int, optimizer: str = "fused") -> None:
    import numpy as np
    import tensorflow as tf

    classes = NETWORKS[network]
    rng = np.random.default_rng(0)
    batch = {"features": rng.normal(size=(64, 313, 128)).astype(np.float32)}
    for i, c in enumerate(classes):
        batch["labels" if i == 0 else f"labels_{i}"] = np.eye(c, dtype=np.float32)[np.arange(64) % c]
    model = _model(variant, classes, optimizer)
    for _ in range(4):
        model.train_on_batch(batch)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            model.train_on_batch(batch)
        tf.profiler.experimental.stop()
        millis, counts = op_times(logdir, steps)
    name = {"k3": f"ours (Keras 3, {optimizer} Adam)", "k2": "tf-keras (Keras 2)"}[variant]
    print(f"{name}, {network} network: ops' CPU time {sum(millis.values()):.1f} ms per step (all threads), "
          f"{sum(counts.values()):.0f} ops per step")
    for kind, ms in millis.most_common(top):
        print(f"  {ms:8.2f} ms  x{counts[kind]:6.1f}  {kind}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", help="k3 (ours) and/or k2 (tf-keras); default: both")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="2020")
    parser.add_argument("--optimizer", choices=["fused", "keras"], default="fused",
                        help="ours with FusedAdam (as the experiments) or Keras' own Adam (before issue 16's fix)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    if set(args.variants) - {"k3", "k2"}:
        parser.error(f"variants: choose from k3, k2; got {' '.join(args.variants)}")
    import keras2_reference

    for variant in args.variants or ["k3", "k2"]:
        if variant == "k2" and not keras2_reference.available():
            print("tf-keras is not installed: the Keras 2 build is skipped (pip install tf-keras)")
            continue
        profile(variant, args.network, args.steps, args.top, args.optimizer)


if __name__ == "__main__":
    main()
