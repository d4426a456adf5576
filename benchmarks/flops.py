"""Floating-point operations of one training clip for every trainer (issue 13: GPU-hours estimates).

For each network the forward pass of ONE input clip (or crop) is traced into a TensorFlow graph and its
floating-point operations are counted by TensorFlow's own profiler (``tf.compat.v1.profiler``,
``float_operation``: convolutions, matrix products and the element-wise ops it has statistics for; one
multiply-add = 2 operations). A training step costs about three forward passes (the forward pass, the
gradient with respect to the activations and the gradient with respect to the weights), so::

    training FLOPs per clip ~ 3 x forward FLOPs per clip

These are the figures of ``asdcore.estimates.TRAINING_FLOPS_PER_CLIP``; the GPU-hours of an estimate are
``steps x batch x training FLOPs per clip / sustained FLOP/s`` (``asdcore.estimates.ASSUMED_GPU_TFLOPS``).
Also printed: this CPU's achieved rate for the networks whose step time ``benchmarks/scale.py`` measured.

    python benchmarks/flops.py
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def forward_flops(model, input_shape) -> int:
    """Floating-point operations of ``model`` on one input of ``input_shape`` (no batch axis), inference mode."""
    import tensorflow as tf

    spec = tf.TensorSpec((1,) + tuple(input_shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def networks():
    """(trainer key of asdcore.estimates, description, model builder, one input's shape) per network."""
    from ddcsad.backbones import build_light_encoder, build_resnet38
    from smoothing.serial_oe import build_serial_oe
    from subcluster_adacos.network import build_embedding_model

    serial_oe_input = (251, 224)  # one 4 s crop of 224 mel bins, hop 256 at 16 kHz (smoothing/serial_oe.py)
    return [
        ("subcluster2020", "Table I ResNet (+ a 41 x 16 sub-cluster head, < 0.1 %)",
         lambda: build_embedding_model((313, 128)), (313, 128)),
        ("multi2021", "the same ResNet (+ two heads, < 0.1 %)", lambda: build_embedding_model((313, 128)), (313, 128)),
        ("ddcsad-light", "DDCSAD light CNN, 256-frame crops", lambda: build_light_encoder((256, 128, 1)),
         (256, 128, 1)),
        ("ddcsad-resnet38", "DDCSAD ResNet38 (PANNs), 256-frame crops", lambda: build_resnet38((256, 128)),
         (256, 128)),
        ("serialoe-light", "SerialOE light CNN, 4 s crops", lambda: build_serial_oe(6, serial_oe_input, "light"),
         serial_oe_input),
        ("serialoe-efficientnet_b0", "SerialOE EfficientNet-B0 (the paper's), 4 s crops",
         lambda: build_serial_oe(6, serial_oe_input, "efficientnet_b0"), serial_oe_input),
    ]


def main():
    import keras

    from asdcore.estimates import STEP_BATCH, STEP_SECONDS

    print("trainer                    forward GFLOP/clip  training GFLOP/clip (x3)  network")
    for key, description, build, shape in networks():
        keras.backend.clear_session()
        forward = forward_flops(build(), shape)
        line = f"{key:26s} {forward / 1e9:18.3f}  {3 * forward / 1e9:24.3f}  {description}"
        if key in STEP_SECONDS:
            fastest = STEP_SECONDS[key][0]
            line += (f"; this CPU at {fastest:.2f} s per step of {STEP_BATCH[key]}: "
                     f"{3 * forward * STEP_BATCH[key] / fastest / 1e9:.0f} GFLOP/s achieved")
        print(line, flush=True)


if __name__ == "__main__":
    main()
