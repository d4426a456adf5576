"""Settings of the ``subcluster-adacos`` command (Wilkinghoff 2020): the frozen, paper-cited config, its quick
variant, the experiments' choices and the networks each experiment needs.

Keras-free (imported by ``run_dcase2020.py --help``); the driver is :mod:`subcluster_adacos.experiments`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from asdcore.errors import ASDError


EXPERIMENTS = ("backends", "mixup", "subclusters", "representations", "ensemble")
TABLE_II_BACKENDS = ("model_output", "cosine_mean", "cosine_top10", "plda", "gaussian_spherical",
                     "gaussian_diag", "gaussian_full")


@dataclass(frozen=True)
class SubClusterAdaCosConfig:
    """Settings of the Wilkinghoff 2020 experiments; defaults = the paper (section / table cited)."""

    epochs: int = 400  # Sec. IV-B
    batch_size: int = 64  # Sec. IV-B
    learning_rate: float = 1e-3  # Adam defaults, Sec. IV-B
    l2: float = 1e-5  # public code
    angle_mode: str = "reference"  # mixed-up angle of the public code; "corrected" = without count factor
    class_weight: str = "balanced"  # public code
    checkpoint_every: int = 100  # snapshots every 100 epochs
    subclusters: tuple = (1, 2, 4, 8, 16, 32, 64)  # Table IV and the ensemble (Fig. 2/3)
    representation_subclusters: int = 32  # Table V "learned" = the S = 32 GMM row of Table IV
    combined_mean_types: tuple = ("ToyConveyor",)  # Table V "combined": the mean representation for these
    gmm_score: str = "max_component"  # public code; "loglik" = weighted mixture log-likelihood
    # added to the covariance diagonal of every Gaussian and GMM (Tables II-V): the public code's 1e-3. Table II
    # says "as implemented in scikit-learn" (default 1e-6), but its full-Gaussian row equals Table III's
    # "mixup, standard AdaCos" row and Table III's "mixup, modified" row equals Table IV's S = 1 rows (the
    # public code's GMM, 1e-3): one Gaussian back-end behind the three tables, so 1e-3 for Table II too
    reg_covar: float = 1e-3
    divergence_scale: float = 1e8  # Table III "diverges": stop when the adaptive scale exceeds this or is NaN
    mixup_labels: str = "linear"  # eq. (4); "max": max(l*y1, (1-l)*y2) (the author's DCASE 2022 code)
    # the head's classes: "sections" = one per machine ID / section (the paper's); "section_attributes" = one
    # per section and attribute string of its training clips (DCASE 2022-2025); "auto" = section_attributes
    # on 2022-2025 data, sections on 2020/2021 data (docs/later-dcase.md)
    classes: str = "auto"

    def quick(self) -> "SubClusterAdaCosConfig":
        """A CPU-sized variant: 10 epochs, S in {1, 4}; all other settings as the paper."""
        return replace(self, epochs=10, checkpoint_every=10, subclusters=(1, 4), representation_subclusters=4)


@dataclass(frozen=True)
class ModelSpec:
    """One network to train: loss head, mixup on/off and the number of sub-clusters."""

    loss: str
    mixup: bool
    n_subclusters: int

    @property
    def name(self) -> str:
        loss = "subcluster_adacos" if self.loss == "subcluster_adacos" else "adacos"
        return f"{loss}_S{self.n_subclusters:02d}_{'mixup' if self.mixup else 'nomixup'}"


def models_for(experiment: str, config: SubClusterAdaCosConfig) -> list[ModelSpec]:
    """The networks an experiment needs (Table II: standard AdaCos with mixup, Sec. IV-C)."""
    if experiment == "backends":
        return [ModelSpec("adacos", True, 1)]
    if experiment == "mixup":
        return [ModelSpec("adacos", False, 1), ModelSpec("subcluster_adacos", False, 1),
                ModelSpec("adacos", True, 1), ModelSpec("subcluster_adacos", True, 1)]
    if experiment in ("subclusters", "ensemble"):
        return [ModelSpec("subcluster_adacos", True, s) for s in config.subclusters]
    if experiment == "representations":
        return [ModelSpec("subcluster_adacos", True, config.representation_subclusters)]
    raise ASDError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)} or all")


def training_config(spec: ModelSpec, c: SubClusterAdaCosConfig):
    """The :class:`~subcluster_adacos.training.TrainingConfig` of one network of the experiments."""
    from subcluster_adacos.training import TrainingConfig

    return TrainingConfig(loss=spec.loss, n_subclusters=spec.n_subclusters, mixup=spec.mixup,
                          mixup_labels=c.mixup_labels, angle_mode=c.angle_mode, epochs=c.epochs,
                          batch_size=c.batch_size, learning_rate=c.learning_rate, l2=c.l2,
                          class_weight=c.class_weight, checkpoint_every=c.checkpoint_every,
                          divergence_scale=c.divergence_scale)
