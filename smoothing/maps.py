"""What SerialOE learned: embedding maps of f_D and its section accuracy (issue 14).

Fujimura et al. smooth the generative scores over neighbours in the feature space f_D of SerialOE (one
network per machine type, cosine distance): the map shows that space, per machine type, each test clip as
the mean of its 4 s crops' f_D (the protocol's ``level: clip`` item), L2-normalised, sections coloured,
source / target marked. The section accuracy on the normal test clips is that of SerialOE's own section
head g_id (eq. (6), linear without bias): the section with the largest logit, the logits averaged over a
clip's crops (= g_id of the crops' mean f_D). No network runs again except loading g_id's weights.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asdcore.classification import accuracy_by_type, normal_test_rows, report_classification
from asdcore.embedding_maps import write_run_maps

__all__ = ["diagnostics", "section_head"]


def section_head(model_path) -> np.ndarray:
    """The kernel (D, C) of SerialOE's section head g_id, read from a unit's ``model.keras``."""
    import keras

    import smoothing.serial_oe  # noqa: F401 - registers the custom layers for deserialisation

    model = keras.models.load_model(model_path, compile=False)
    return np.asarray(keras.ops.convert_to_numpy(model.get_layer("g_id").kernel), dtype=np.float64)


def diagnostics(ctx, units, emb) -> list[str]:
    """Maps of f_D and section accuracy of the SerialOE units; ``emb``: (clips, crops, D) f_D of every clip
    of ``ctx.table`` (NaN where not embedded). Returns the comparison.md section."""
    table = ctx.table
    types = table["machine_type"].astype(str).to_numpy()
    test = (table["split"].astype(str) == "test").to_numpy()
    normal = np.zeros(len(table), bool)
    normal[normal_test_rows(table)] = True
    clip_features = np.asarray(emb, dtype=np.float64).mean(axis=1)  # NaN for the clips not embedded
    true, predicted, clip_types, drawn = [], [], [], np.zeros(len(table), bool)
    for unit in units:
        if unit.spec["network"] != "serial_oe":
            continue
        machine_type = unit.spec["machine_type"]
        of_type = types == machine_type
        sections = np.array(sorted(table.loc[of_type, "unit"].astype(str).unique()))  # g_id's order (training)
        rows = normal & of_type
        kernel = section_head(unit.folder / "model.keras")
        predicted.append(sections[(clip_features[rows] @ kernel).argmax(axis=1)])
        true.append(table["unit"].astype(str).to_numpy()[rows])
        clip_types.append(types[rows])
        drawn |= of_type & test
    if drawn.any():
        write_run_maps(ctx, clip_features[drawn], table[drawn], "SerialOE feature space f_D (the smoothing "
                       "neighbourhood), each clip the mean of its 4 s crops", unit_name="section")
    frame = pd.DataFrame()
    if true:
        frame = accuracy_by_type(np.concatenate(true), np.concatenate(predicted), np.concatenate(clip_types),
                                 network="SerialOE (one network per machine type)", head="section")
    return report_classification(ctx, frame, ["predicted section = argmax of SerialOE's section head g_id "
                                              "(logits averaged over the clip's 4 s crops), among the sections "
                                              "of the clip's machine type"])
