"""A toy method for the runner's tests: one 'model' per machine ID = the mean of its training clips'
temporal-mean log-mel plus noise drawn from the unit's seed; anomaly score = distance to it."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from asdcore.features import LogMelConfig
from asdcore.pipeline import unit_keys
from asdcore.runner import Assembled, Method


@dataclass(frozen=True)
class ToyConfig:
    noise: float = 1.0  # scale of the seeded perturbation of each centre
    machine_types: tuple = ("fan", "ToyCar")  # units trained (fewer = faster tests)
    n_frames: int = 31


class Toy(Method):
    command = "toy"
    year = 2020
    title = "Toy method"
    uses_keras = False

    def default_config(self, quick):
        return ToyConfig()

    def add_arguments(self, parser):
        parser.add_argument("--noise", type=float, default=None)
        parser.add_argument("--types", nargs="+", default=None)

    def overrides(self, args):
        return {"noise": args.noise, "machine_types": args.types}

    def prepare(self, ctx):
        features = ctx.features(LogMelConfig(n_frames=ctx.config.n_frames))
        ctx.state["means"] = np.asarray(features).mean(axis=1)
        ctx.state["keys"] = unit_keys(ctx.table)

    def units(self, ctx):
        keys = sorted(k for k in set(ctx.state["keys"]) if k.split("/")[0] in ctx.config.machine_types)
        return [ctx.unit(key.replace("/", "-"), {"key": key}) for key in keys]

    def train_unit(self, ctx, unit):
        if os.environ.get("TOY_FAIL") == unit.name:
            raise RuntimeError(f"simulated kill while training {unit.name}")
        rows = ctx.mask(split="train") & (ctx.state["keys"] == unit.spec["key"])
        means = ctx.state["means"]
        centre = means[rows].mean(axis=0) + ctx.config.noise * np.random.standard_normal(means.shape[1])
        np.save(unit.folder / "centre.npy", centre)
        with open(ctx.run.path / "trained.log", "a", encoding="utf-8") as log:
            log.write(unit.name + "\n")
        return {"clips": int(rows.sum())}

    def assemble(self, ctx, units):
        scores = np.zeros(len(ctx.table))  # types left out by --types score 0
        test = ctx.mask(split="test", machine_type=list(ctx.config.machine_types))
        for unit in units:
            rows = test & (ctx.state["keys"] == unit.spec["key"])
            centre = np.load(unit.folder / "centre.npy")
            scores[rows] = np.linalg.norm(ctx.state["means"][rows] - centre, axis=1)

        def report(ctx, per_unit, summary):
            return ["## Toy table", "", f"{len(per_unit)} units evaluated"]

        return Assembled({"toy": scores}, report=report)


METHOD = Toy()
