"""Steady time of one training step on a fixed batch (``train_on_batch``; median of 12 after 3 warm-up steps).

The 2020 network (41 classes, S = 1, batch 64, mixup, loss inside the model) in Keras 3 (ours) or in the
Keras 2 build of ``benchmarks/keras2_reference.py`` (``pip install tf-keras``), with Adam or SGD;
``unfused`` runs ours with Keras' own unfused batch normalisation (the layer before issue 16).

    python benchmarks/training_step.py {k3,k2} {adam,sgd} [unfused]
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
mode, opt = sys.argv[1], sys.argv[2]
import tensorflow as tf
if "unfused" in sys.argv:
    from subcluster_adacos.layers import FusedBatchNormalization
    FusedBatchNormalization._fusable = lambda *a: False
x = np.random.default_rng(0).normal(size=(64, 313, 128)).astype(np.float32)
y = np.eye(41, dtype=np.float32)[np.arange(64) % 41]
if mode == "k2":
    import keras2_reference, tf_keras
    model, _ = keras2_reference.build(41)
    if opt == "sgd": model.compile(optimizer=tf_keras.optimizers.SGD())
else:
    import keras
    from subcluster_adacos.network import build_training_model
    model = build_training_model(41, seed=0)
    model.compile(optimizer=keras.optimizers.Adam() if opt == "adam" else keras.optimizers.SGD())
d = {"features": x, "labels": y}
for _ in range(3): model.train_on_batch(d)
ts = []
for _ in range(12):
    t = time.perf_counter(); model.train_on_batch(d); ts.append(time.perf_counter() - t)
print(mode, opt, f"median step {np.median(ts)*1000:.0f} ms, min {min(ts)*1000:.0f} ms")
