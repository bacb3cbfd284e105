"""Saving and loading trained recommenders as versioned files.

A model is two files side by side: ``recommender-<version>.npz`` with the
arrays (written with ``allow_pickle=False`` and read the same way, so loading
a file never runs code) and ``recommender-<version>.json`` with the settings
and a summary. ``<version>`` is the UTC time of saving plus a counter, so the
newest model is simply the last name in sort order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from loyalty.recommender.data import HistoryStore
from loyalty.recommender.features import FEATURES, FeatureConfig
from loyalty.recommender.model import Config, GroupPopularity, Recommender
from loyalty.recommender.ranker import LinearRanker, TreeRanker
from loyalty.recommender.stats import ItemStats

PREFIX = "recommender-"
_SPARSE = ("co_user", "co_next", "ease", "user_unit", "item_buyers")
_DENSE = ("buyers", "repeat_rate", "event_key", "gap_days", "user_norms", "factors", "clusters")
_TREE = ("feature", "threshold", "left", "right", "value", "roots")  # TreeRanker's node arrays


class ModelFileError(Exception):
    """A model file is missing, unreadable or of another format version."""


def _put_sparse(out: dict[str, np.ndarray], name: str, m: sp.csr_matrix) -> None:
    m = m.tocsr()
    out[f"{name}.data"] = m.data
    out[f"{name}.indices"] = m.indices
    out[f"{name}.indptr"] = m.indptr
    out[f"{name}.shape"] = np.asarray(m.shape, dtype=np.int64)


def _get_sparse(arrays: Any, name: str) -> sp.csr_matrix:
    shape = tuple(int(v) for v in arrays[f"{name}.shape"])
    return sp.csr_matrix(
        (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]), shape=shape
    )


def _put_linear(out: dict[str, np.ndarray], name: str, ranker: LinearRanker) -> None:
    out[f"{name}.weights"] = ranker.weights
    out[f"{name}.bias"] = np.asarray([ranker.bias])
    out[f"{name}.pairs"] = ranker.pairs


def _get_linear(arrays: Any, name: str) -> LinearRanker:
    return LinearRanker(arrays[f"{name}.weights"], float(arrays[f"{name}.bias"][0]), arrays[f"{name}.pairs"])


def _version(directory: Path) -> str:
    """A UTC timestamp, made unique within the directory."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    n = 1
    while (directory / f"{PREFIX}{stamp}-{n:03d}.npz").exists():
        n += 1
    return f"{stamp}-{n:03d}"  # fixed width: name order is age order


def save(model: Recommender, directory: str | os.PathLike[str]) -> Path:
    """Write a trained model into ``directory`` as a new version (set on ``model``); returns the .npz path."""
    if model.stats is None or model.history is None:
        raise ValueError("only a trained recommender can be saved")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    st, hist = model.stats, model.history
    arrays: dict[str, np.ndarray] = {name: getattr(st, name) for name in _DENSE}
    for name in _SPARSE:
        _put_sparse(arrays, name, getattr(st, name))
    arrays.update({
        "history.item": hist.item, "history.time": hist.time,
        "history.basket": hist.basket, "history.indptr": hist.indptr,
        "category": model.category, "available": model.available, "global_pop": model.global_pop,
    })
    rankers: dict[str, dict[str, Any]] = {}
    for label, ranker in (("ranker_all", model.ranker_all), ("ranker_new", model.ranker_new)):
        if isinstance(ranker, LinearRanker):
            _put_linear(arrays, label, ranker)
            rankers[label] = {"kind": "linear"}
        elif isinstance(ranker, TreeRanker):
            for name in _TREE:
                arrays[f"{label}.{name}"] = getattr(ranker, name)
            arrays[f"{label}.bias"] = np.asarray([ranker.bias])
            if ranker.screen is not None:
                _put_linear(arrays, f"{label}.screen", ranker.screen)
            rankers[label] = {"kind": "trees", "depth": ranker.depth, "screen": ranker.screen is not None,
                              "screen_keep": ranker.screen_keep, "blend": ranker.blend}
    for name, g in model.groups.items():
        _put_sparse(arrays, f"group.{name}", g.counts)
        arrays[f"group.{name}.totals"] = g.totals
    version = _version(folder)
    meta = {
        "format": Recommender.FORMAT,
        "version": version,
        "features": list(FEATURES),
        "config": dataclasses.asdict(model.config),
        "n_users": model.n_users,
        "n_items": model.n_items,
        "trained_until": model.trained_at,
        "end_time": st.end_time,
        "groups": sorted(model.groups),
        "rankers": rankers,
        "extra": model.extra,
    }
    target = folder / f"{PREFIX}{version}.npz"
    # Write to temporary names and rename, so a reader never sees half a model.
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **arrays)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".json", delete=False,
                                     encoding="utf-8") as tmp_meta:
        json.dump(meta, tmp_meta, indent=2)
    os.replace(tmp_meta.name, target.with_suffix(".json"))
    os.replace(tmp.name, target)
    model.version = version
    return target


def newest(directory: str | os.PathLike[str]) -> Path | None:
    """The newest complete model file in ``directory`` (None if there is none)."""
    folder = Path(directory)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.glob(f"{PREFIX}*.npz") if p.with_suffix(".json").exists())
    return found[-1] if found else None


def _readable(meta: dict[str, Any]) -> bool:
    """Whether a model file with this metadata is of the format and features this code reads."""
    return meta.get("format") == Recommender.FORMAT and meta.get("features") == list(FEATURES)


def is_current(path: str | os.PathLike[str]) -> bool:
    """Whether this code reads the model file (its metadata's format and features), without loading it."""
    try:
        meta = json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return _readable(meta)


def load(path: str | os.PathLike[str]) -> Recommender:
    """Read a model written by :func:`save`."""
    npz = Path(path)
    try:
        meta = json.loads(npz.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read model metadata for {npz.name}: {exc}") from exc
    if not _readable(meta):
        raise ModelFileError(
            f"{npz.name} has format {meta.get('format')}, this code reads {Recommender.FORMAT}: retrain"
        )
    try:
        arrays = np.load(npz, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read model arrays {npz.name}: {exc}") from exc
    try:
        return _build(meta, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{npz.name} is incomplete or damaged: {exc}") from exc
    finally:
        arrays.close()


# FeatureConfig settings added after models were first saved, at the value that reproduces how
# a model saved without them was trained.
_BEFORE_SETTINGS: dict[str, Any] = {"spread_floor": 0.0}
# The same for Config: a model saved before member rows were cut keeps its whole rows.
_BEFORE_CONFIG: dict[str, Any] = {"member_row_items": 0}


def _build(meta: dict[str, Any], arrays: Any) -> Recommender:
    """Recreate the recommender from metadata and the open .npz archive."""
    cfg = {**_BEFORE_CONFIG, **meta["config"]}
    # A setting the file does not name did not exist when it was trained: the model keeps the
    # behaviour it was trained with (every item-item row read: no floor).
    cfg["features"] = FeatureConfig(**{**_BEFORE_SETTINGS, **cfg["features"]})
    model = Recommender(Config(**cfg))
    model.n_users, model.n_items = int(meta["n_users"]), int(meta["n_items"])
    model.trained_at = float(meta["trained_until"])
    kwargs: dict[str, Any] = {name: arrays[name] for name in _DENSE}
    kwargs.update({name: _get_sparse(arrays, name) for name in _SPARSE})
    model.stats = ItemStats(end_time=float(meta["end_time"]), **kwargs)
    model.history = HistoryStore.from_arrays(
        model.n_users, arrays["history.item"], arrays["history.time"],
        arrays["history.basket"], arrays["history.indptr"],
    )
    model.category = arrays["category"]
    model.available = arrays["available"]
    model.global_pop = arrays["global_pop"]
    for label, spec in dict(meta.get("rankers") or {}).items():
        if label not in ("ranker_all", "ranker_new"):
            continue
        if spec["kind"] == "linear":
            setattr(model, label, _get_linear(arrays, label))
        elif spec["kind"] == "trees":
            tree = {name: arrays[f"{label}.{name}"] for name in _TREE}
            screen = _get_linear(arrays, f"{label}.screen") if spec["screen"] else None
            setattr(model, label, TreeRanker(**tree, depth=int(spec["depth"]),
                                             bias=float(arrays[f"{label}.bias"][0]),
                                             screen=screen, screen_keep=int(spec["screen_keep"]),
                                             blend=float(spec["blend"])))
        else:
            raise ValueError(f"unknown ranker kind {spec['kind']!r}")
    model.groups = {
        name: GroupPopularity(_get_sparse(arrays, f"group.{name}"), arrays[f"group.{name}.totals"])
        for name in meta["groups"]
    }
    model.version = str(meta["version"])
    model.extra = dict(meta.get("extra") or {})
    return model
