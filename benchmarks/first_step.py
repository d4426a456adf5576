"""Time of the first training step (tracing + graph optimisation + one step) and of the second one.

The 2020 network (41 classes, S = 1, batch 64) as our training path builds it (``build_training_model`` and
``training._compile``), or the Keras 2 build of ``benchmarks/keras2_reference.py`` (``pip install tf-keras``);
``nograppler`` turns TensorFlow's graph optimiser off, to see its share.

    python benchmarks/first_step.py {k3,k2} [nograppler]
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
mode = sys.argv[1]
import tensorflow as tf
if "nograppler" in sys.argv:
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
x = np.random.default_rng(0).normal(size=(64, 313, 128)).astype(np.float32)
y = np.eye(41, dtype=np.float32)[np.arange(64) % 41]
t0 = time.perf_counter()
if mode == "k2":
    import keras2_reference
    model, _ = keras2_reference.build(41)
else:
    import keras
    from subcluster_adacos.network import build_training_model
    from subcluster_adacos.training import TrainingConfig, _compile
    model = build_training_model(41, seed=0)
    _compile(model, TrainingConfig())
t1 = time.perf_counter()
model.train_on_batch({"features": x, "labels": y})
t2 = time.perf_counter()
model.train_on_batch({"features": x, "labels": y})
t3 = time.perf_counter()
print(mode, sys.argv[2:], f"build {t1-t0:.2f} s, first step {t2-t1:.2f} s, second step {t3-t2:.2f} s")
