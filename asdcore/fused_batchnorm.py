"""Batch normalisation with TensorFlow's fused kernel (the sub-cluster AdaCos ResNet, SerialOE's light CNN).

:class:`FusedBatchNormalization` is ``keras.layers.BatchNormalization`` (same weights, configuration and
arithmetic) computed by ``FusedBatchNormV3`` on the TensorFlow back-end (issue 16: the 2020 / 2021 ResNet;
issue 13: SerialOE's light CNN). ``subcluster_adacos.layers.FusedBatchNormalization`` is the same layer under
the name the sub-cluster AdaCos models were saved with.
"""
from __future__ import annotations

import keras

__all__ = ["FusedBatchNormalization"]


@keras.saving.register_keras_serializable(package="asdcore")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' ``BatchNormalization`` computed with TensorFlow's fused kernel (a speed change only).

    Same weights, same arithmetic (batch mean and *biased* batch variance in training, moving statistics
    at inference, ``moving = momentum * moving + (1 - momentum) * batch``), same configuration. Keras 3's
    TensorFlow back-end builds batch normalisation from ~10 element-wise ops; the fused ``FusedBatchNormV3``
    kernel (what Keras 2 used) was 7x faster forward and 2.4x faster forward + backward for the stem's
    (64, 157, 64, 16) tensor on our 2-core CPU (issue 16, README "Speed"), and keeps fewer intermediate
    tensors for the gradient (issue 13: SerialOE's light CNN, README "Running at paper scale"). The kernel returns the
    Bessel-corrected variance for the moving average; it is scaled back by ``(n - 1) / n`` so the moving
    variance is Keras 3's. Other back-ends, masks, renorm, synchronised BN, inputs other than 4-D
    channels-last float16/bfloat16/float32, and an epsilon below the kernel's 1.001e-5 use the Keras layer.
    """

    def _fusable(self, inputs, mask):
        return (keras.backend.backend() == "tensorflow" and mask is None and len(inputs.shape) == 4
                and self.axis in (-1, 3) and self.center and self.scale and not self.renorm
                and not getattr(self, "synchronized", False) and self.epsilon >= 1.001e-5
                and keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16", "float32"))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")
        gamma = tf.cast(self.gamma, "float32")
        beta = tf.cast(self.beta, "float32")
        if training and self.trainable:
            empty = tf.constant([], dtype="float32")
            y, mean, variance = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=True)[:3]
            shape = tf.shape(x)
            n = tf.cast(shape[0] * shape[1] * shape[2], "float32")
            variance = variance * (tf.maximum(n - 1.0, 1.0) / n)  # Bessel correction undone: biased, as Keras
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)[0]
        return tf.cast(y, self.compute_dtype)
