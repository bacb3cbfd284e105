"""The cluster launch: what ``--replicas 2`` starts, refusals before anything starts, and nginx's own check."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from bot import cluster, launcher

PROD = {
    "RASA_ENDPOINTS": "endpoints.prod.yml",
    "WEBCHAT_REDIS_URL": "redis://127.0.0.1:6379/0",
    "LOYALTY_DATABASE_URL": "postgresql+psycopg2://u@127.0.0.1/loyalty",
}


def args(**over: object) -> argparse.Namespace:
    base: dict[str, object] = dict(model="models/loyalty.tar.gz", host="127.0.0.1", port=5005,
                                   actions_host="127.0.0.1", actions_port=5055, api_port=8081, staff_port=5010,
                                   shell=False, replicas=2)
    return argparse.Namespace(**{**base, **over})


@pytest.mark.parametrize("missing, says", [
    ("RASA_ENDPOINTS", "endpoints.prod.yml"),
    ("WEBCHAT_REDIS_URL", "WEBCHAT_REDIS_URL"),
    ("LOYALTY_DATABASE_URL", "PostgreSQL"),
])
def test_replicas_without_shared_stores_are_refused(missing: str, says: str) -> None:
    env = {k: v for k, v in PROD.items() if k != missing}
    with pytest.raises(cluster.ClusterError, match=says):
        cluster.check_environment(env)


def test_two_replicas_each_with_its_own_action_server_behind_nginx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx not installed (apt-get install nginx-light)")
    for k, v in PROD.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("WECHAT_TOKEN", "t")
    children = [c for c in launcher.commands(args(), tmp_path) if c.name != "fake SMS gateway"]
    names = [c.name for c in children]
    assert names == ["loyalty API", "outreach scheduler", "staff app", "action server 1", "assistant 1",
                     "action server 2", "assistant 2", "nginx"]
    rasa = [c for c in children if c.name.startswith("assistant")]
    assert [c.cmd[c.cmd.index("--port") + 1] for c in rasa] == ["5105", "5106"]
    assert [c.env["ACTION_SERVER_URL"] for c in rasa if c.env] == [
        "http://127.0.0.1:5055/webhook", "http://127.0.0.1:5056/webhook"]
    conf = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert "server 127.0.0.1:5105" in conf and "server 127.0.0.1:5106" in conf and "listen 127.0.0.1:5005;" in conf
    # nginx itself accepts the filled-in configuration.
    nginx = children[-1].cmd
    check = subprocess.run([*nginx, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_one_replica_is_the_usual_launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", "t")
    names = [c.name for c in launcher.commands(args(replicas=1), tmp_path) if c.name != "fake SMS gateway"]
    assert names == ["action server", "loyalty API", "outreach scheduler", "staff app", "assistant"]
