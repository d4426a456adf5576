#!/usr/bin/env python
"""Experiments of the two DCASE 2021 task 2 papers.

  multi-distribution  Wilkinghoff 2021: two sub-cluster AdaCos heads, source/target scores (Tables 2-5)
  smoothing           Fujimura et al. 2021: discriminative neighbourhood smoothing (Tables I-II, Fig. 5)
  evaluate            official scores of a folder of DCASE 2021 submission files

Without --data-root every experiment runs on a small synthetic data set in the DCASE 2021 layout.
"""
import sys

from asdcore.cli import main as _main

COMMANDS = {
    "multi-distribution": ("subcluster_adacos.experiments_2021",
                           "multiple distributions with sub-cluster AdaCos (Wilkinghoff 2021)"),
    "smoothing": ("smoothing.experiments", "discriminative neighbourhood smoothing (Fujimura et al. 2021)"),
    "evaluate": ("asdcore.evaluation", "AUC/pAUC/F1 of DCASE submission files against the data set's labels"),
}


def main(argv=None) -> int:
    return _main(2021, COMMANDS, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
