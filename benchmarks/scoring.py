"""Time to score one 10 s recording from its wav file with one sub-cluster AdaCos system on the CPU:
read + log-mel + normalisation + embedding network + GMM back-end (``ScoringSystem``).

The network is untrained (timing does not depend on the weights) and the GMMs are fitted on random
embeddings. Prints the median and the 90th percentile over repeated single-clip calls.
Target: below 20 ms per clip with one model.

    python benchmarks/scoring.py [--repeats 50] [--subclusters 16]
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--subclusters", type=int, default=16)
    args = parser.parse_args()

    from asdcore.audio import load_audio
    from asdcore.backends import GMMBackend
    from asdcore.features import LogMelConfig, Normalizer, compute_logmel
    from subcluster_adacos.network import build_embedding_model
    from subcluster_adacos.scoring import ScoringSystem

    rng = np.random.default_rng(0)
    config = LogMelConfig()
    model = build_embedding_model()
    backend = GMMBackend(args.subclusters).fit(rng.normal(size=(400, 128)))
    normalizer = Normalizer(mean=np.zeros(128, np.float32), std=np.ones(128, np.float32))
    system = ScoringSystem(config, normalizer, [model], [{"fan/id_00": backend}])
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "normal_id_00_00000000.wav"
        sf.write(wav, (0.1 * rng.normal(size=160000)).astype(np.float32), 16000, subtype="PCM_16")

        def score_one():
            features = compute_logmel(load_audio(wav)[None], config)
            return system.score_features(normalizer.transform(features), ["fan/id_00"])

        for _ in range(3):  # warm-up: first calls build the TF functions
            score_one()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            score_one()
            times.append(1000 * (time.perf_counter() - start))
    print(f"score one 10 s clip from wav (1 model, GMM S={args.subclusters}): median {np.median(times):.1f} ms, "
          f"p90 {np.percentile(times, 90):.1f} ms over {args.repeats} calls (target < 20 ms)")


if __name__ == "__main__":
    main()
