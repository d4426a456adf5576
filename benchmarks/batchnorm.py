"""Op-level timing behind issue 16: one layer at a time, Keras 3 against Keras 2 (``tf_keras``), CPU.

Times ``BatchNormalization`` (training forward, inference, training forward + backward), ``Conv2D`` 3x3
(forward, forward + backward) and ``LeakyReLU`` on the stem's (64, 157, 64, 16) tensor of the Table I
network, each inside a ``tf.function`` (mean of 20 calls after one warm-up call), plus our
``FusedBatchNormalization``. Needs ``pip install tf-keras`` for the Keras 2 rows (skipped otherwise).

    python benchmarks/batchnorm.py
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    import keras
    import tensorflow as tf

    from subcluster_adacos.layers import FusedBatchNormalization

    x = tf.constant(np.random.default_rng(0).normal(size=(64, 157, 64, 16)).astype(np.float32))

    def bench(name, f, n=20):
        g = tf.function(f, autograph=False)
        g(x)
        start = time.perf_counter()
        for _ in range(n):
            g(x)
        print(f"{name:40s} {(time.perf_counter() - start) / n * 1000:7.2f} ms", flush=True)

    def forward_backward(layer):
        def f(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                y = layer(inputs, training=True)
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, [inputs] + layer.trainable_weights)
        return f

    libraries = [("keras3", keras.layers.BatchNormalization, keras.layers.Conv2D,
                  lambda: keras.layers.LeakyReLU(negative_slope=0.1)),
                 ("ours (fused)", FusedBatchNormalization, None, None)]
    try:
        import tf_keras
        libraries.append(("tf-keras", tf_keras.layers.BatchNormalization, tf_keras.layers.Conv2D,
                          lambda: tf_keras.layers.LeakyReLU(0.1)))
    except ImportError:
        print("tf-keras is not installed: the Keras 2 rows are skipped (pip install tf-keras)")
    print(f"1-min load average {os.getloadavg()[0]:.2f}")
    for name, bn_class, conv_class, act in libraries:
        bn = bn_class()
        bn(x)
        bench(f"{name} BN train forward", lambda t: bn(t, training=True))
        bench(f"{name} BN inference", lambda t: bn(t, training=False))
        bench(f"{name} BN train forward+backward", forward_backward(bn))
        if conv_class is not None:
            conv = conv_class(16, 3, padding="same")
            conv(x)
            bench(f"{name} conv3x3 forward", lambda t: conv(t))
            bench(f"{name} conv3x3 forward+backward", forward_backward(conv))
            leaky = act()
            bench(f"{name} LeakyReLU forward", lambda t: leaky(t))


if __name__ == "__main__":
    main()
