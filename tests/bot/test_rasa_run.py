"""The Rasa process's memory settings: what the launcher gives it, and what ``bot.rasa_run`` does before Rasa runs.

The figures (RSS after start and after many turns) are in docs/scaling.md, from
``bench/turn_cost.py``; these tests check the settings those figures rely on
are in place, and that loading DIET and TED for prediction only gives the
weights Rasa's own load gives.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bot import launcher, rasa_run
from tests.support.stack import MODEL, ROOT, require_model


def args(**over: object) -> argparse.Namespace:
    base: dict[str, object] = dict(model="models/loyalty.tar.gz", host="127.0.0.1", port=5005,
                                   actions_host="127.0.0.1", actions_port=5055, api_port=8081, staff_port=5010,
                                   shell=False, replicas=1)
    return argparse.Namespace(**{**base, **over})


@pytest.mark.parametrize("shell", [False, True])
def test_the_launcher_starts_rasa_with_its_memory_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell: bool
) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", "t")
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("TF_INTRA_OP_PARALLELISM_THREADS", raising=False)
    monkeypatch.delenv("TF_INTER_OP_PARALLELISM_THREADS", raising=False)
    children = launcher.commands(args(shell=shell), tmp_path)
    rasa = next(c for c in children if c.name == "assistant")
    assert rasa.cmd[1:3] == ["-m", "bot.rasa_run"]
    assert rasa.env is not None and rasa.env["MALLOC_ARENA_MAX"] == "2"
    assert rasa.env["OMP_WAIT_POLICY"] == "passive"
    assert rasa.env["TF_INTRA_OP_PARALLELISM_THREADS"] == rasa.env["TF_INTER_OP_PARALLELISM_THREADS"] == "1"
    assert rasa.env["WECHAT_TOKEN"] == "t"  # the rest of the launcher's environment too
    # The other processes are not Rasa: they keep the launcher's own environment.
    assert all(c.env is None for c in children if c.name != "assistant")


def test_a_setting_the_operator_made_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", "t")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    rasa = next(c for c in launcher.commands(args(), tmp_path) if c.name == "assistant")
    assert rasa.env is not None and rasa.env["MALLOC_ARENA_MAX"] == "4"
    assert rasa_run.environment({"PATH": "/bin"}) == {"PATH": "/bin", **rasa_run.ENVIRONMENT}


def test_replicas_get_the_settings_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RASA_ENDPOINTS", "endpoints.prod.yml")
    monkeypatch.setenv("WEBCHAT_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("LOYALTY_DATABASE_URL", "postgresql+psycopg2://u@127.0.0.1/loyalty")
    monkeypatch.setenv("WECHAT_TOKEN", "t")
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(launcher.cluster, "write_nginx", lambda *a: (["nginx"], tmp_path / "nginx.conf"))
    rasa = [c for c in launcher.commands(args(replicas=2), tmp_path) if c.name.startswith("assistant")]
    assert len(rasa) == 2
    assert all(c.env is not None and c.env["MALLOC_ARENA_MAX"] == "2" for c in rasa)


def test_rasa_run_keeps_jax_out_of_the_process() -> None:
    code = ("import sys; from bot import rasa_run; rasa_run.prepare(); import tensorflow; "
            "util = sys.modules['tensorflow.lite.python.util']; "
            "print(sys.modules['jax'] is None, util._xla_computation is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]


# Loads the agent as `python -m bot.rasa_run` does, then compares every weight of DIET's and TED's
# models with the saved checkpoint (argv[2], the unpacked archive) and reads a few messages.
_CHECK = r"""
import asyncio, json, sys
from pathlib import Path
from bot import rasa_run
rasa_run.prepare()
import numpy as np, tensorflow as tf
from rasa.core.agent import Agent
from rasa.utils.tensorflow.models import RasaModel
loaded = {}
serve = RasaModel.load.__func__
def spy(cls, path, *a, **k):
    model = serve(cls, path, *a, **k)
    loaded[cls.__name__] = (Path(path), model)
    return model
RasaModel.load = classmethod(spy)
agent = Agent.load(sys.argv[1])
out = {}
for name, (path, model) in loaded.items():
    saved = tf.train.load_checkpoint(str(Path(sys.argv[2]) / path.parent.name / path.name))
    shapes = saved.get_variable_to_shape_map()
    mine = Path(sys.argv[2]) / (name + "-served")
    model.save_weights(str(mine))
    now = tf.train.load_checkpoint(str(mine))
    keys = [k for k in shapes if k.startswith("model/_tf_layers/")]
    same = 0
    for k in keys:
        v, w = saved.get_tensor(k), now.get_tensor(k)
        mask = k.replace("/kernel/.ATTRIBUTES", "/kernel_mask/.ATTRIBUTES")
        # A sparsely connected layer zeroes its kernel outside its mask each time it runs.
        same += bool(np.array_equal(v, w) or (mask in shapes and np.array_equal(v * saved.get_tensor(mask), w)))
    out[name] = {"weights": len(keys), "same": same, "optimizer": getattr(model, "optimizer", None) is not None}
out["parse"] = [asyncio.run(agent.parse_message(t)) for t in ("推荐点护肤品", "how many points do I have")]
print(json.dumps(out, ensure_ascii=False, default=str))
"""


def test_diet_and_ted_serve_the_saved_weights_without_a_training_step(tmp_path: Path) -> None:
    require_model()
    with tarfile.open(MODEL) as archive:
        members = [m for m in archive.getmembers() if "DIETClassifier" in m.name or "TEDPolicy" in m.name]
        archive.extractall(tmp_path, members=members)
    components = next(tmp_path.rglob("components"))
    out = subprocess.run([sys.executable, "-c", _CHECK, str(MODEL), str(components)], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for name in ("DIET", "TED"):
        assert result[name]["weights"] > 20
        assert result[name]["same"] == result[name]["weights"], result[name]
        assert result[name]["optimizer"] is False  # no training step: no optimizer, no slots
    skincare, points = result["parse"]
    assert {(e["entity"], e["value"]) for e in skincare["entities"] if e["extractor"] == "DIETClassifier"} == {
        ("product_category", "skincare")}
    assert points["intent"]["name"] == "ask_points"
