"""A Keras 2 (``tf_keras``) build of the sub-cluster AdaCos training network, for speed comparisons only.

Written for ``benchmarks/training.py`` from the project's own description of the network (the module
docstring of :mod:`subcluster_adacos.network`: paper Table I, pre-activation residual units, L2 1e-5) and
of the head (:class:`subcluster_adacos.layers.SubClusterAdaCos`: max-logit rescaled adaptive scale, "nearest"
median, grouped softmax of paper eq. (9)), mixup inside the model (partner = the batch reversed) and the
class-weighted soft-target cross-entropy attached with ``add_loss``. It does the same work per step as our
Keras 3 model, so the two can be timed against each other; it is not used by any experiment.

Only this module imports ``tf_keras`` (``pip install tf-keras``); :func:`available` says whether it can.
"""
import math

import numpy as np


def available():
    """True when ``tf_keras`` (Keras 2 on TensorFlow 2.x) can be imported."""
    try:
        import tf_keras  # noqa: F401
    except ImportError:
        return False
    return True


def build(n_classes, n_subclusters=1, input_shape=(313, 128), l2=1e-5, class_weights=None, seed=0,
          label_inputs=None):
    """Keras 2 training model ``[features, labels...] -> probabilities``; compile with an optimizer only.

    ``n_classes`` may be an int (one head, the 2020 network) or a sequence (one head per label set, the
    2021 two-head network); ``class_weights`` then one weight vector (or None) per head.
    """
    import tensorflow as tf
    import tf_keras as k2

    heads = [int(n_classes)] if np.isscalar(n_classes) else [int(c) for c in n_classes]
    weights = [class_weights] if np.isscalar(n_classes) else list(class_weights or [None] * len(heads))
    reg = k2.regularizers.L2(l2)

    def conv(x, filters, kernel, strides=1):
        return k2.layers.Conv2D(filters, kernel, strides=strides, padding="same", kernel_regularizer=reg)(x)

    def unit(x, filters, down):
        r = k2.layers.LeakyReLU(0.1)(x)
        r = conv(r, filters, 3, 2 if down else 1)
        r = k2.layers.LeakyReLU(0.1)(r)
        r = k2.layers.BatchNormalization()(r)
        r = conv(r, filters, 3)
        if down:
            x = k2.layers.MaxPooling2D((2, 2), padding="same")(x)
            x = conv(x, filters, 1)
        return k2.layers.BatchNormalization()(k2.layers.Add()([x, r]))

    class Mix(k2.layers.Layer):
        def call(self, inputs, training=None):
            x, y = inputs
            if not training:
                return [x, y]
            lam = tf.random.uniform((tf.shape(x)[0],), seed=seed)
            lx, ly = tf.reshape(lam, (-1, 1, 1)), tf.reshape(lam, (-1, 1))
            return [lx * x + (1 - lx) * tf.reverse(x, [0]), ly * y + (1 - ly) * tf.reverse(y, [0])]

    class Head(k2.layers.Layer):
        def __init__(self, classes, **kwargs):
            super().__init__(**kwargs)
            self.classes = classes

        def build(self, shapes):
            self.w = self.add_weight(name="w", shape=(shapes[0][-1], self.classes * n_subclusters),
                                     initializer="glorot_uniform")
            self.s = self.add_weight(name="s", shape=(), trainable=False,
                                     initializer=k2.initializers.Constant(
                                         math.sqrt(2.0) * math.log(self.classes * n_subclusters - 1)))

        def call(self, inputs, training=None):
            x, y = inputs
            cos = tf.matmul(tf.nn.l2_normalize(x, -1), tf.nn.l2_normalize(self.w, 0))
            s = tf.identity(self.s)
            if training:
                c = tf.stop_gradient(cos)
                logits = s * c
                f_max = tf.reduce_max(logits)
                b_avg = tf.reduce_mean(tf.reduce_sum(tf.exp(logits - f_max), -1))
                theta = tf.acos(tf.clip_by_value(c, -1 + 1e-7, 1 - 1e-7))
                ry = tf.repeat(y, n_subclusters, axis=-1)
                mixed = tf.reduce_sum(ry * theta, -1) * tf.reduce_sum(tf.cast(tf.not_equal(y, 0.0), tf.float32), -1)
                n = tf.shape(mixed)[0]
                half = n // 2
                med = tf.gather(tf.sort(mixed), half - ((n + 1) % 2) * (half % 2))
                s = tf.stop_gradient((f_max + tf.math.log(b_avg)) / tf.cos(tf.minimum(math.pi / 4, med)))
                self.s.assign(s)
            logits = s * cos
            p = tf.nn.softmax(logits - tf.reduce_max(logits, -1, keepdims=True))
            return tf.reduce_sum(tf.reshape(p, (-1, self.classes, n_subclusters)), -1)

    class Loss(k2.layers.Layer):
        def __init__(self, w, **kwargs):
            super().__init__(**kwargs)
            self.cw = None if w is None else tf.constant(np.asarray(w, np.float32))

        def call(self, inputs):
            p, target, label = inputs
            ce = k2.losses.categorical_crossentropy(target, p)
            if self.cw is not None:
                ce = ce * tf.reduce_sum(label * self.cw, -1)
            self.add_loss(tf.reduce_mean(ce))
            return p

    inner = k2.Input(shape=input_shape, name="features")
    e = k2.layers.Reshape(tuple(input_shape) + (1,))(inner)
    e = conv(e, 16, 7, 2)
    e = k2.layers.LeakyReLU(0.1)(e)
    e = k2.layers.BatchNormalization()(e)
    e = k2.layers.MaxPooling2D((3, 3), strides=2, padding="valid")(e)
    for stage, filters in enumerate((16, 32, 64, 128), start=1):
        for u in (1, 2):
            e = unit(e, filters, stage > 1 and u == 1)
    e = k2.layers.MaxPooling2D((10, 1), padding="same")(e)
    e = k2.layers.Dense(128, kernel_regularizer=reg, name="embedding")(k2.layers.Flatten()(e))
    embedder = k2.Model(inner, e, name="embedding_model")

    features = k2.Input(shape=input_shape, name="features")
    names = label_inputs or (["labels"] + [f"labels_{i}" for i in range(1, len(heads))])
    labels = [k2.Input(shape=(c,), name=name) for c, name in zip(heads, names)]
    joined = labels[0] if len(heads) == 1 else k2.layers.Concatenate()(labels)
    x, mixed = Mix()([features, joined])
    targets, start = [], 0
    for c in heads:
        targets.append(mixed[:, start:start + c])
        start += c
    e = embedder(x)
    outputs = [Loss(w)([Head(c)([e, t]), t, lab]) for c, w, t, lab in zip(heads, weights, targets, labels)]
    model = k2.Model([features] + labels, outputs if len(outputs) > 1 else outputs[0])
    model.compile(optimizer=k2.optimizers.Adam())
    return model, embedder
