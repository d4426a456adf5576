"""Per-step and per-epoch timing of one training run of the 2020 network (issue 16: where an epoch's time goes).

960 random clips, 41 classes, S = 1, batch 64 (15 steps an epoch), 8 epochs, one variant per process:

* ``ours``: our Keras 3 model, ``fit`` on the one-pass ``tf.data`` dataset (the pipeline before issue 16's
  fix; Keras 3 swaps iterators at every epoch start);
* ``ours repeat``: the same on the endless dataset with ``steps_per_epoch`` (what ``training._fit`` runs);
* ``arrays``: our Keras 3 model, ``fit`` on in-memory arrays;
* ``k2``: the tf-keras (Keras 2) build of ``benchmarks/keras2_reference.py``, ``fit`` on arrays.

Extra words: ``jit`` (``jit_compile=True`` on the CPU), ``spe`` (``steps_per_execution=15``: one call per
epoch), ``gcfreeze`` / ``nogc`` (Python's garbage collector frozen after the build / disabled).

Printed per epoch: wall time, process CPU time (all threads), the sum of the steps (on_train_batch_begin to
on_train_batch_end), ``pre`` = on_epoch_begin to the first batch, ``post`` = last batch to on_epoch_end,
the time spent in Python's garbage collector, then every step in ms; and the collections over 10 ms.

    python benchmarks/epoch_steps.py {ours,arrays,k2} [repeat] [jit] [spe] [gcfreeze] [nogc]
"""
import gc, os, sys, time, json
import numpy as np
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE)); sys.path.insert(0, HERE)
if len(sys.argv) < 2 or sys.argv[1] not in ("ours", "arrays", "k2") or \
        set(sys.argv[2:]) - {"repeat", "jit", "spe", "gcfreeze", "nogc"}:
    sys.exit("usage: python benchmarks/epoch_steps.py {ours,arrays,k2} [repeat] [jit] [spe] [gcfreeze] [nogc]")
variant = sys.argv[1]
epochs = 8
extra = sys.argv[2:] 
gc_times = []
_gc_start = [0]
def gccb(phase, info):
    if phase == "start": _gc_start[0] = time.perf_counter()
    else: gc_times.append((info["generation"], time.perf_counter() - _gc_start[0]))
gc.callbacks.append(gccb)
import training as B
features, labels = B._data(960, (41,))
classes = (41,)
from subcluster_adacos.training import balanced_class_weights
weights = [balanced_class_weights(labels[0], 41)]
one_hots = {"labels": np.eye(41, dtype=np.float32)[labels[0]]}
def mk(base):
    class T(base):
        def on_train_begin(self, logs=None): self.steps=[]; self.ep=[]; self.gaps=[]; self.last=None
        def on_epoch_begin(self, e, logs=None):
            self.es=time.perf_counter(); self.cs=time.process_time(); self.steps.append([]); self.pre=None; self.gc0=len(gc_times)
        def on_epoch_end(self, e, logs=None):
            now=time.perf_counter(); self.ep.append((now-self.es, time.process_time()-self.cs, self.pre, now-self.be, sum(g[1] for g in gc_times[self.gc0:])))
        def on_train_batch_begin(self, b, logs=None):
            self.bs=time.perf_counter()
            if self.pre is None: self.pre = self.bs - self.es
        def on_train_batch_end(self, b, logs=None): self.be=time.perf_counter(); self.steps[-1].append(self.be-self.bs)
    return T()
if variant == "k2":
    import keras2_reference, tf_keras
    tf_keras.utils.set_random_seed(0)
    model, _ = keras2_reference.build(41, 1, class_weights=weights[0])
    t = mk(tf_keras.callbacks.Callback)
    model.fit({"features": features, **one_hots}, batch_size=64, epochs=epochs, shuffle=True, verbose=0, callbacks=[t])
else:
    import keras, tensorflow as tf
    from subcluster_adacos.network import build_training_model
    from subcluster_adacos.training import TrainingConfig, _compile, make_multi_label_dataset
    keras.utils.set_random_seed(0)
    model = build_training_model(41, n_subclusters=1, class_weights=weights[0], seed=0)
    _compile(model, TrainingConfig(batch_size=64))
    if "spe" in extra or "jit" in extra:
        model.compile(optimizer=model.optimizer, steps_per_execution=15 if "spe" in extra else 1, jit_compile="jit" in extra)
    t = mk(keras.callbacks.Callback)
    if "gcfreeze" in extra: gc.collect(); gc.freeze()
    if "nogc" in extra: gc.disable()
    if variant == "ours":
        if "repeat" in extra:
            ds = make_multi_label_dataset(features, labels, classes, 64, seed=0, repeat=True)
            model.fit(ds, steps_per_epoch=15, epochs=epochs, verbose=0, shuffle=False, callbacks=[t])
        else:
            ds = make_multi_label_dataset(features, labels, classes, 64, seed=0)
            model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[t])
    else:
        model.fit({"features": features, **one_hots}, batch_size=64, epochs=epochs, shuffle=True, verbose=0, callbacks=[t])
print(variant, extra, "load %.2f" % os.getloadavg()[0])
for e, ((et, ct, pre, post, gct), st) in enumerate(zip(t.ep, t.steps)):
    print(f" ep{e} wall {et:.2f}s cpu {ct:.2f}s steps {sum(st):.2f} pre {pre*1000:.0f}ms post {post*1000:.0f}ms gc {gct*1000:.0f}ms | " + " ".join(f"{s*1000:.0f}" for s in st))
big = [g for g in gc_times if g[1] > 0.01]
print(" gc collections", len(gc_times), "total %.3fs" % sum(g[1] for g in gc_times), "over 10ms:", [(g, round(s,3)) for g, s in big])
