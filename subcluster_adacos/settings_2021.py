"""Settings of the ``multi-distribution`` command (Wilkinghoff 2021): the frozen, paper-cited config (sections
cited), its quick variant, the experiments' choices and the parse helper of ``--subclusters``.

Keras-free (imported by ``run_dcase2021.py --help``); the driver is :mod:`subcluster_adacos.experiments_2021`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from asdcore.errors import ASDError


EXPERIMENTS = ("distributions", "losses", "system")


@dataclass(frozen=True)
class MultiDistributionConfig:
    """Settings of the Wilkinghoff 2021 experiments; defaults = the paper (section cited) or, where the
    paper is silent, the 2020 sub-cluster AdaCos code it builds on."""

    epochs: int = 400  # Sec. 2.3
    batch_size: int = 64  # Sec. 2.3
    learning_rate: float = 1e-3  # Adam (Sec. 2.3) with Keras' default settings
    l2: float = 1e-5  # network of [11] (Sec. 2.3); 2020 public code
    mixup: bool = True  # Sec. 2.3
    # paper silent (it cites mixup); the author's DCASE 2022 code, every commit: max(l*y1, (1-l)*y2);
    # "linear": l*y1 + (1-l)*y2, the 2020 paper's eq. (4) and the 2020 code's final version
    mixup_labels: str = "max"
    angle_mode: str = "reference"  # mixed-up angle of the 2020 public code (REFERENCE.md §4)
    class_weight: str = "none"  # paper silent; the author's 2022 code uses none ("balanced": the 2020 code's)
    loss_weights: tuple = (1.0, 1.0)  # Sec. 2.3: two sub-cluster AdaCos losses with equal weights
    subclusters: tuple = (1, 2, 4, 8, 16)  # Sec. 2.5: S = 2^0 ... 2^4, the same S in both heads
    checkpoint_every: int = 100  # Sec. 2.5: scores after every 100 epochs (4 checkpoints x 5 S = 20 sets)
    reg_covar: float = 1e-3  # Sec. 2.4: 1e-3 added to the covariance diagonal
    component_weights: bool = True  # Sec. 2.4: "weighted likelihoods of component k" (False: 2020 code)
    gmm_score: str = "component"  # Sec. 2.4: max over components k; "mixture": full mixture log-likelihood (2022 code)
    section_gmm_data: str = "source"  # Sec. 2.4 "normal data of the source domain"; "all": + target (2022 code)
    tmax_types: tuple = ("valve",)  # Sec. 2.4, eq. (4): temporal-maximum term for valve (source domain)
    # Sec. 2.4-2.5: eq. (4) is the score of one system and the ensemble sums the systems' scores, so the term
    # enters each of the 20 score sets ("per_set"); "once": added once to the summed ensemble
    tmax_term: str = "per_set"
    sections_only_types: tuple = ("fan", "gearbox", "valve")  # Sec. 2.5: section loss only for these
    variant_choice: str = "paper"  # Sec. 2.5 the paper's per-type choice; "dev": the better on the dev set
    threshold_percentile: float = 90.0  # Sec. 2.6
    target_decision: str = "first_term"  # Sec. 2.6: target decisions on the first term of eq. (3)

    def quick(self) -> "MultiDistributionConfig":
        """A CPU-sized variant: 2 epochs with a checkpoint after each, S in {1, 2}; the rest as the paper."""
        return replace(self, epochs=2, checkpoint_every=1, subclusters=(1, 2))

    def check(self) -> "MultiDistributionConfig":
        if self.variant_choice not in ("paper", "dev"):
            raise ASDError(f"variant_choice must be 'paper' or 'dev', got {self.variant_choice!r}")
        if self.target_decision not in ("first_term", "full"):
            raise ASDError(f"target_decision must be 'first_term' or 'full', got {self.target_decision!r}")
        if not self.subclusters or min(int(s) for s in self.subclusters) < 1:
            raise ASDError(f"subclusters must be positive integers, got {self.subclusters}")
        if self.epochs < 1 or self.checkpoint_every < 1:
            raise ASDError(f"epochs ({self.epochs}) and checkpoint_every ({self.checkpoint_every}) must be >= 1")
        for name, allowed in (("class_weight", ("none", "balanced")), ("gmm_score", ("component", "mixture")),
                              ("section_gmm_data", ("source", "all")), ("mixup_labels", ("linear", "max")),
                              ("tmax_term", ("per_set", "once"))):
            if getattr(self, name) not in allowed:
                raise ASDError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if not 0 <= self.threshold_percentile <= 100:
            raise ASDError(f"threshold_percentile must lie in [0, 100], got {self.threshold_percentile}")
        return self

    def training(self, n_subclusters: int):
        from subcluster_adacos.training import TrainingConfig

        return TrainingConfig(loss="subcluster_adacos", n_subclusters=int(n_subclusters), mixup=self.mixup,
                              mixup_labels=self.mixup_labels, angle_mode=self.angle_mode, epochs=self.epochs,
                              batch_size=self.batch_size,
                              learning_rate=self.learning_rate, l2=self.l2, class_weight=self.class_weight,
                              checkpoint_every=self.checkpoint_every)


def _subclusters(text):
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ASDError(f"--subclusters {text!r}: give comma-separated integers, e.g. 1,2,4,8,16") from None
    if not values:
        raise ASDError("--subclusters: give at least one number of sub-clusters")
    return values


def _checkpoints(config) -> list[int]:
    epochs = [e for e in range(1, config.epochs + 1) if e % config.checkpoint_every == 0]
    return epochs if epochs and epochs[-1] == config.epochs else epochs + [config.epochs]
