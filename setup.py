"""Reference TensorFlow/Keras implementations of four anomalous sound detection systems (DCASE 2020/2021)."""
from setuptools import find_packages, setup

setup(
    name="asd-reference",
    version="0.1.0",
    description=(
        "Sub-cluster AdaCos, multiple distributions with sub-cluster AdaCos, BCE + DDCSAD and discriminative "
        "neighbourhood smoothing for anomalous sound detection (DCASE 2020/2021 task 2)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["asdcore*", "subcluster_adacos*", "ddcsad*", "smoothing*"]),
    py_modules=["run_dcase2020", "run_dcase2021"],
    package_data={"asdcore": ["published/*.csv"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorboard>=2.16",  # keras.callbacks.TensorBoard writes its scalars through it
        "librosa>=0.10",
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.4",
        "pandas>=2.0",
        "soundfile>=0.12",
        "pyyaml>=6.0",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "tabulate>=0.9",
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "test": ["pytest>=7"],
        # the layers and losses also run on Keras' JAX back-end; `pip install jax` is the CPU build
        "jax": ["jax>=0.4.30"],
    },
    entry_points={
        "console_scripts": [
            "asd-dcase2020=run_dcase2020:main",
            "asd-dcase2021=run_dcase2021:main",
            "asd=asdcore.asd_cli:main",
        ]
    },
)
