"""Adam with TensorFlow's fused update kernel (issue 16: training speed).

Keras 3's ``keras.optimizers.Adam`` updates each variable with about ten separate backend ops (casts, powers,
two moment updates, a square root, a division, three variable writes). On the TensorFlow backend,
:class:`FusedAdam` does the same update with one ``ResourceApplyAdam`` kernel per variable, the kernel the
Keras 2 (tf-keras) optimizer used. The update is Adam (Kingma & Ba, 2015, Algorithm 1, with the
"epsilon outside the square root" form both Keras versions use)::

    m  <- m + (1 - beta_1) (g - m)
    v  <- v + (1 - beta_2) (g^2 - v)
    lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    w  <- w - lr_t * m / (sqrt(v) + epsilon)

so the two optimizers agree to float32 rounding (the kernel orders the arithmetic its own way: differences
of ~1e-7 relative per step; ``tests/asdcore/test_optimizers.py`` checks both against this formula in NumPy).
Measured with ``benchmarks/training.py`` and an op-level profile (README, "Training speed"): the update of
the 2020 network's 77 variables takes ~1.7 ms instead of ~3.4 ms per step.

On other backends (JAX, PyTorch), with ``amsgrad=True`` or for a variable that is not a TensorFlow resource
variable, it falls back to Keras' own update, so a model compiled with it trains everywhere. It is registered
as a Keras serializable (``asdcore>FusedAdam``) with the configuration of ``keras.optimizers.Adam``.
"""
from __future__ import annotations

import keras

__all__ = ["FusedAdam"]


@keras.saving.register_keras_serializable(package="asdcore")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (same arguments and defaults) with one fused update kernel per variable on the
    TensorFlow backend."""

    def update_step(self, gradient, variable, learning_rate):
        """Apply one Adam step to ``variable`` (a ``tf.Variable`` on the TensorFlow backend)."""
        if self.amsgrad or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        if not isinstance(variable, tf.Variable) or not hasattr(variable, "handle"):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        momentum = self._momentums[index].value
        velocity = self._velocities[index].value
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=momentum.handle, v=velocity.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)
