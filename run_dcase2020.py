#!/usr/bin/env python
"""Experiments of the two DCASE 2020 task 2 papers.

  simple-representations  Wilkinghoff 2020, Table V rows "mean" and "max"
  subcluster-adacos       Wilkinghoff 2020, Tables II-V and the ensemble of Fig. 2/3
  ddcsad                  Kuroyanagi et al. 2020, Table II and Fig. 2
  evaluate                official AUC / pAUC of a folder of DCASE 2020 submission files
  score                   anomaly scores of new recordings with a saved sub-cluster AdaCos system

Without --data-root every experiment runs on a small synthetic data set in the DCASE 2020 layout.
"""
import sys

from asdcore.cli import main as _main

COMMANDS = {
    "simple-representations": ("asdcore.representations",
                               "Table V 'mean'/'max': a Gaussian per ID on temporal statistics of the log-mel"),
    "subcluster-adacos": ("subcluster_adacos.experiments",
                          "sub-cluster AdaCos (Wilkinghoff 2020): backends, mixup, sub-clusters, ensemble"),
    "ddcsad": ("ddcsad.experiments", "BCE + DDCSAD (Kuroyanagi et al. 2020): losses and few real anomalies"),
    "evaluate": ("asdcore.evaluation", "AUC/pAUC of DCASE submission files against the data set's labels"),
    "score": ("subcluster_adacos.score_cli", "score new recordings with a saved sub-cluster AdaCos run"),
}


def main(argv=None) -> int:
    return _main(2020, COMMANDS, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
