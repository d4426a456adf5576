"""What the sub-cluster AdaCos networks learned: embedding maps and ID / section accuracy (issue 14).

- 2020 (:func:`diagnostics_2020`): the map of the Table V "proposed" network (S = ``representation_
  subclusters``; without it in the run, the sub-cluster AdaCos network with the largest S) with its learned
  centres, the sub-cluster weight vectors of the SubClusterAdaCos head (one group of S per class, Wilkinghoff
  2020 eq. (9)); the machine-ID accuracy of every network of the run on the normal test clips, the class
  being ``argmax_j max_l cos(x, w_jl)`` over the 41 classes (:func:`asdcore.classification.nearest_centre_classes`).
- 2021 (:func:`diagnostics_2021`): per machine type the map of the network of the variant the system uses
  for it (largest S, last snapshot) with its section head's centres, source / target marked; the section
  accuracy of every network's last snapshot. The attribute head has no accuracy: DCASE 2021 test clips
  carry no attribute labels.

Everything is read from what the units wrote (embeddings of every clip, the heads' normalised centres):
no network runs again.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asdcore.classification import accuracy_by_type, nearest_centre_classes, normal_test_rows, report_classification
from asdcore.embedding_maps import write_run_maps

__all__ = ["diagnostics_2020", "diagnostics_2021", "centre_rows"]


def centre_rows(class_names, n_subclusters: int) -> pd.DataFrame:
    """One row (machine_type, unit, kind) per centre of a head whose classes are ``<type>/<unit>`` names,
    in the order of ``centres.reshape(-1, D)`` (class by class, S each)."""
    names = np.repeat(np.asarray(class_names, dtype=str), n_subclusters)
    types, units = zip(*(name.split("/", 2)[:2] for name in names)) if len(names) else ((), ())
    return pd.DataFrame({"machine_type": types, "unit": units, "kind": "centre"})


def diagnostics_2020(ctx, nets, specs) -> list[str]:
    """Maps of the proposed network and the ID accuracy of ``specs`` (the run's networks, ModelSpec) from
    :class:`~subcluster_adacos.scoring.TrainedNetworks` ``nets``; returns the comparison.md section."""
    from subcluster_adacos.training import class_unit

    table, class_names, labels = ctx.table, np.asarray(ctx.state["class_names"]), ctx.state["labels"]
    normal = normal_test_rows(table)
    # the unit of each class: with attribute classes (classes: section_attributes) a clip counts as correct
    # when the predicted class is one of its unit's (test clips of the evaluation sets carry no attributes)
    unit_of = np.array([class_unit(n) for n in class_names], dtype=object)
    n_units = len(set(unit_of))
    head = f"machine ID ({len(class_names)} classes)" if n_units == len(class_names) else \
        f"section ({len(class_names)} classes, {n_units} sections)"
    frames = []
    for spec in specs:
        trained = nets.get(spec)
        if trained["diverged"]:
            continue
        predicted = nearest_centre_classes(trained["embeddings"][normal], trained["centres"])
        frames.append(accuracy_by_type(unit_of[labels[normal]], unit_of[predicted],
                                       table["machine_type"].to_numpy()[normal], network=spec.name, head=head))
    shown = _map_network(ctx.config, [s for s in specs if not nets.get(s)["diverged"]])
    if shown is not None:
        trained = nets.get(shown)
        centres = trained["centres"]
        write_run_maps(ctx, trained["embeddings"], table, f"sub-cluster AdaCos network {shown.name} "
                       f"(S = {shown.n_subclusters}), stars: its learned sub-cluster centres", unit_name="ID",
                       centres=centres.reshape(-1, centres.shape[-1]),
                       centre_rows=centre_rows(class_names, centres.shape[1]))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return report_classification(ctx, frame, ["predicted ID = argmax over the classes of the largest cosine "
                                              "between the embedding and a class's sub-cluster centres"])


def _map_network(config, specs):
    """The network the map shows: Table V's (S = representation_subclusters), else the sub-cluster AdaCos
    network with mixup and the largest S, else the first."""
    if not specs:
        return None
    wanted = [s for s in specs if s.loss == "subcluster_adacos" and s.mixup]
    exact = [s for s in wanted if s.n_subclusters == config.representation_subclusters]
    return (exact or sorted(wanted, key=lambda s: s.n_subclusters)[-1:] or specs)[0]


def diagnostics_2021(ctx, units, choice, outputs_of) -> list[str]:
    """Maps and section accuracy of the 2021 networks. ``units``: the run's units (spec ``variant``,
    ``n_subclusters``); ``choice``: machine type -> the variant the proposed system uses;
    ``outputs_of(unit, epoch)``: the :class:`~subcluster_adacos.multi_distribution.NetworkOutputs` of a
    snapshot. Returns the comparison.md section."""
    from subcluster_adacos.multi_distribution import section_keys

    table = ctx.table
    keys = section_keys(table)
    normal = normal_test_rows(table)
    finished = [u for u in units if not u.result()["diverged"] and u.result()["epochs"]]
    frames, last = [], {}
    for unit in finished:
        epoch = max(unit.result()["epochs"])
        outputs = last[unit.name] = outputs_of(unit, epoch)
        names = np.array(list(outputs.section_centres))
        centres = np.stack([outputs.section_centres[n] for n in names])
        predicted = names[nearest_centre_classes(outputs.embeddings[normal], centres)]
        frames.append(accuracy_by_type(keys[normal], predicted, table["machine_type"].to_numpy()[normal],
                                       network=f"{unit.name} (epoch {epoch})", head=f"section ({len(names)} classes)"))
    types = table["machine_type"].astype(str).to_numpy()
    for variant in sorted(set(choice.values())):
        candidates = [u for u in finished if u.spec["variant"] == variant]
        if not candidates:
            continue
        unit = max(candidates, key=lambda u: u.spec["n_subclusters"])
        outputs = last[unit.name]
        mine = np.isin(types, [t for t, v in choice.items() if v == variant])
        names = np.array([n for n in outputs.section_centres if n.split("/")[0] in set(types[mine])])
        centres = np.stack([outputs.section_centres[n] for n in names]) if len(names) else None
        write_run_maps(ctx, outputs.embeddings[mine], table[mine], f"network {unit.name} (epoch "
                       f"{max(unit.result()['epochs'])}) of the proposed ensemble, stars: its section head's "
                       "centres", unit_name="section", centres=None if centres is None else
                       centres.reshape(-1, centres.shape[-1]),
                       centre_rows=None if centres is None else centre_rows(names, centres.shape[1]))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return report_classification(ctx, frame, [
        "predicted section = argmax over the sections of the largest cosine between the embedding and a "
        "section's sub-cluster centres (last snapshot of each network)",
        "attribute head: no accuracy, the DCASE 2021 test clips carry no attribute labels"])
