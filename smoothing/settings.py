"""Settings of the ``smoothing`` command (Fujimura et al., DCASE 2021): the protocol's frozen config with the
paper's sections cited, the command's config (protocol, a_G, f_D), its quick variant and the YAML loader.

Keras-free (imported by ``run_dcase2021.py --help``; the networks' configs are read on first use); the driver
is :mod:`smoothing.experiments`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from asdcore.errors import ASDError
from smoothing.protocol import FIG5_FRACTIONS


EXPERIMENTS = ("table", "fraction")
GENERATIVE = ("ae", "subcluster-adacos")
QUICK_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def _err(message: str) -> ASDError:
    return ASDError(f"smoothing/settings.py: {message}")


@dataclass(frozen=True)
class ProtocolConfig:
    """The protocol's settings; defaults = Fujimura et al. (section / table cited) or documented choices.

    Attributes
    ----------
    source_fraction, n_target_fit :
        85 % of the source training clips and two target clips train the models (IV-A).
    standardize_amplitude :
        Every clip scaled to zero mean and unit variance (IV-A).
    clip_seconds :
        Frames kept per clip (10 s clips, IV-A); longer clips keep their last 10 s, shorter ones are
        repeat-padded (:func:`asdcore.audio.fit_length`).
    k_min, k_max :
        The K grid: powers of two from 2 (K = 1 is a_G itself) to 2048 (Table I), every one evaluated; a
        (data, K) that covers every candidate of every pool is reported as saturated
        (:func:`smoothing.protocol.saturated_settings`).
    datas :
        Test items used as neighbours: "source" or "all" (Table I, "Data").
    metric :
        Distance between f_D features (cosine; see :class:`smoothing.knn.NeighbourhoodSmoother`).
    pool, level :
        Which test items smooth each other (issue 11). Default ``level="segment"``, ``pool="section"``:
        eq. (7) over the seven 4 s segments of every test clip of one machine type and section, then the
        mean per clip. On the real data (100 normal + 100 anomalous clips per section and domain) a
        section then holds 1,400 source / 2,800 segments in all, so every K of Table I (Source up to
        1,024, All up to 2,048, Oracle included) is below its pool and a real choice; the paper scores
        4 s segments (IV-A) and draws its smoothing per section (Fig. 3, 4; Fig. 5 keeps each section's
        ratios). ``level="clip"`` (one f_D and a_G per clip: the mean over its crops; 200 / 400 per
        section: every K >= 256 / 512 saturates) and ``pool="machine_type"`` (all sections of the type in
        the same part, as the kNN back-end of ASDKit by default; 600 / 1,200 clips, 4,200 / 8,400
        segments) are the other readings. Three readings fit Table I's K up to 2,048: segments of one
        section (default), segments of a type's sections, clips of all sections (``pool="machine_type"``,
        ``level="clip"``: 600 / 1,200 clips; K = 1,024 / 2,048 then saturate).
    exclude :
        What eq. (7)'s "except for i" leaves out of an item's neighbours: ``"clip"`` (default: the
        observed sound y_i is a clip, so all seven segments of its clip; its six overlapping siblings
        would otherwise be its nearest neighbours and, for K <= 7, make a_prop about the clip's own mean
        a_G) or ``"item"`` (the segment itself only).
    gmm_clusters, gmm_datas, gmm_covariance, gmm_reg_covar :
        SerialOE's inlier model h: a GMM per section on f_D of the training clips; clusters and data chosen
        on sections 00-02 (Table I lists 2-32 clusters; the grid is powers of two 1-32); covariance and
        regulariser are scikit-learn's defaults (not stated in the paper).
    fractions, n_draws, fraction_selection :
        Fig. 5: 5 %, 10 %, ..., 100 %, 20 draws; "per_fraction": per fraction and machine type the (data, K)
        with the best mean over the draws ("We always gave the best hyperparameter"), or "oracle": the
        Oracle setting of the full test set.
    validate_every :
        Epochs between validation losses (0: after the last epoch only).
    jit_compile :
        Keras ``jit_compile`` of both networks ("auto"; False saves the XLA compilation on CPU quick runs).
    """

    source_fraction: float = 0.85
    n_target_fit: int = 2
    standardize_amplitude: bool = True
    clip_seconds: float = 10.0
    k_min: int = 2
    k_max: int = 2048
    datas: tuple = ("source", "all")
    metric: str = "cosine"
    pool: str = "section"
    level: str = "segment"
    exclude: str = "clip"
    gmm_clusters: tuple = (1, 2, 4, 8, 16, 32)
    gmm_datas: tuple = ("source", "all")
    gmm_covariance: str = "full"
    gmm_reg_covar: float = 1e-6
    fractions: tuple = FIG5_FRACTIONS
    n_draws: int = 20
    fraction_selection: str = "per_fraction"
    validate_every: int = 10
    jit_compile: object = "auto"

    def quick(self) -> "ProtocolConfig":
        """CPU-sized: 1-4 GMM clusters, four fractions x 5 draws for Fig. 5, no XLA."""
        return replace(self, gmm_clusters=(1, 2, 4), fractions=QUICK_FRACTIONS, n_draws=5, validate_every=0,
                       jit_compile=False)

    def check(self) -> "ProtocolConfig":
        if self.pool not in ("section", "machine_type"):
            raise _err(f"pool must be 'section' or 'machine_type', got {self.pool!r}")
        if self.exclude not in ("clip", "item"):
            raise _err(f"exclude must be 'clip' or 'item', got {self.exclude!r}")
        if self.level not in ("clip", "segment"):
            raise _err(f"level must be 'clip' or 'segment', got {self.level!r}")
        if self.fraction_selection not in ("per_fraction", "oracle"):
            raise _err(f"fraction_selection must be 'per_fraction' or 'oracle', got {self.fraction_selection!r}")
        for name in ("datas", "gmm_datas"):
            values = tuple(getattr(self, name))
            if not values or any(v not in ("source", "all") for v in values):
                raise _err(f"{name} must list 'source' and/or 'all', got {values}")
        if not self.gmm_clusters or any(int(c) < 1 for c in self.gmm_clusters):
            raise _err(f"gmm_clusters must be positive integers, got {self.gmm_clusters}")
        if not self.fractions or any(not 0 < float(f) <= 1 for f in self.fractions):
            raise _err(f"fractions must lie in (0, 1], got {self.fractions}")
        if int(self.n_draws) < 1:
            raise _err(f"n_draws must be >= 1, got {self.n_draws}")
        return self


def _ae_config():
    from smoothing.autoencoder import AEConfig

    return AEConfig()


def _serial_oe_config():
    from smoothing.serial_oe import SerialOEConfig

    return SerialOEConfig()


@dataclass(frozen=True)
class SmoothingConfig:
    """The command's settings: the protocol, a_G (:class:`smoothing.autoencoder.AEConfig`, paper IV-A) and f_D
    (:class:`smoothing.serial_oe.SerialOEConfig`, IV-A). A ``--config`` YAML file holds mappings under the
    keys ``protocol``, ``ae`` and ``serial_oe``; unknown keys are refused."""

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    ae: object = field(default_factory=_ae_config)
    serial_oe: object = field(default_factory=_serial_oe_config)

    def __post_init__(self):
        for name, kind in (("protocol", ProtocolConfig), ("ae", type(_ae_config())),
                           ("serial_oe", type(_serial_oe_config()))):
            if not isinstance(getattr(self, name), kind):
                raise ASDError(f"config section '{name}' must be a mapping of settings, got {getattr(self, name)!r}")


def quick_config() -> SmoothingConfig:
    """CPU-sized: the quick protocol; the autoencoder with 10 epochs instead of 1500 and three 4 s crops per
    clip at inference instead of seven (0-4, 3-7, 6-10 s: the whole clip, less overlap); SerialOE with the
    light CNN instead of EfficientNet-B0, 4 epochs, batches of 32 segments, a coarser mel input (64 bins,
    32 ms hop: about 7x cheaper than the paper's 224 bins / 16 ms) and three crops at inference."""
    paper = SmoothingConfig()
    return SmoothingConfig(paper.protocol.quick(), replace(paper.ae, epochs=10, n_segments=3),
                           replace(paper.serial_oe, backbone="light", epochs=4, batch_size=32, n_mels=64,
                                   hop_length=512, n_segments=3))


def load_configs(yaml_path=None, quick: bool = False):
    """(ProtocolConfig, AEConfig, SerialOEConfig): the paper's settings (the quick ones with ``quick``), then
    the YAML file's sections ``protocol``, ``ae``, ``serial_oe``."""
    from asdcore.experiment import resolve_config

    config = resolve_config(quick_config() if quick else SmoothingConfig(), yaml_path)
    return config.protocol.check(), config.ae, config.serial_oe
