"""Several Rasa replicas behind nginx on one port (``make run-cluster``, ``python -m bot.launcher --replicas 2``).

Each replica is a Rasa process with its own action server, all on the shared
stores of the production endpoints (``RASA_ENDPOINTS=endpoints.prod.yml``):
PostgreSQL for the tracker store (bot/tracker_store.py) and Redis for the
conversation locks (bot/lock_store.py); the web chat and console fan pushes
out through Redis (``WEBCHAT_REDIS_URL``), so an agent's reply sent through
one replica reaches a page connected to another. nginx (Debian's package)
listens on the public port and spreads requests over the replicas; its
configuration is ``deploy/nginx-cluster.conf``, filled in under the var dir.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx-cluster.conf"
# Where the replicas listen: the public port plus this, plus the replica's number.
RASA_PORT_OFFSET = 100


class ClusterError(SystemExit):
    """A cluster that cannot work as configured: said before anything starts."""


def check_environment(env: dict[str, str] | os._Environ[str]) -> None:
    """Replicas need shared stores: the production endpoints and Redis for the fan-out."""
    endpoints = env.get("RASA_ENDPOINTS", "endpoints.yml")
    if Path(endpoints).name == "endpoints.yml":
        raise ClusterError("replicas need shared stores: set RASA_ENDPOINTS=endpoints.prod.yml "
                           "(PostgreSQL tracker store, Redis locks) and its TRACKER_DB_* and REDIS_* variables")
    if not env.get("WEBCHAT_REDIS_URL"):
        raise ClusterError("replicas need WEBCHAT_REDIS_URL (pushes to pages and consoles on other replicas)")
    if (env.get("LOYALTY_DATABASE_URL") or "sqlite").startswith("sqlite"):
        raise ClusterError("replicas need LOYALTY_DATABASE_URL on PostgreSQL")


def rasa_ports(public_port: int, replicas: int) -> list[int]:
    return [public_port + RASA_PORT_OFFSET + i for i in range(replicas)]


def nginx_config(listen: str, ports: list[int], var_dir: Path, template: Path = TEMPLATE) -> str:
    """deploy/nginx-cluster.conf with the listen address, the replicas and the var dir filled in."""
    upstreams = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in ports)
    return (template.read_text()
            .replace("@UPSTREAMS@", upstreams)
            .replace("@LISTEN@", listen)
            .replace("@VAR@", str(var_dir)))


def write_nginx(listen: str, ports: list[int], var_dir: Path) -> tuple[list[str], Path]:
    """The nginx command line and its filled-in configuration file."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        raise ClusterError("nginx not found: apt-get install nginx-light")
    home = (var_dir / "nginx").resolve()
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "nginx.conf"
    conf.write_text(nginx_config(listen, ports, home))
    return [nginx, "-p", str(home), "-c", str(conf)], conf
