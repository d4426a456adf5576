"""Discriminative neighbourhood smoothing of generative anomaly scores (Fujimura et al., DCASE 2021 data).

Fujimura, Imoto and Toda, "Discriminative neighborhood smoothing for generative anomalous sound
detection". Three parts, one module each:

- :mod:`smoothing.autoencoder` -- the generative scorer a_G: the dense autoencoder of the DCASE baseline.
- :mod:`smoothing.serial_oe` -- the discriminative feature extractor f_D (SerialOE) and the SerialOE
  comparison system (a GMM on f_D).
- :mod:`smoothing.knn` -- a_prop (paper eq. 7): the mean of a_G over an item (a 4 s segment or a clip)
  and its K-1 nearest neighbours in f_D among the observed test items.

Around them: :mod:`smoothing.training` (4 s crops, validation loss, compiled-model reuse shared by both
networks), :mod:`smoothing.protocol` (the split, the evaluation, the K grid and its saturation, the
selection and Fig. 5, NumPy only) and :mod:`smoothing.experiments` (the ``smoothing`` command; its settings in
:mod:`smoothing.settings`, its paper tables in :mod:`smoothing.tables`).

The submodules import Keras only where they need it, so ``smoothing.knn`` stays a NumPy-only import.
"""

__all__ = ["autoencoder", "experiments", "knn", "protocol", "serial_oe", "settings", "tables", "training"]
