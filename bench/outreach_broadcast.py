"""A broadcast to many members on PostgreSQL: preview time, planning time, sends per second, scheduler memory.

On a throwaway PostgreSQL server: ``--members`` members (bulk-inserted, each
with a WeChat openid and one subscription credit, so every send goes as a
subscription message through the fake WeChat API run as its own process), one
broadcast to all of them. Measured:

- preview (audience, holdout, rule skips, samples; writes nothing) and planning
  (the ledger rows) of that audience;
- the scheduler process (``python -m bot.outreach``) delivering every send:
  sends per second, its peak resident memory (VmHWM), and the CPU time each
  send costs the scheduler, the fake API and PostgreSQL (steadier than sends
  per second on a busy machine);
- baseline, in this process: bare wechatpy calls to the same fake API with no
  ledger, no rules, no database, to show what the bookkeeping costs.

    .venv/bin/python -m bench.outreach_broadcast [--members 100000] [--workers 1] [--senders 8] [--rate 1000000]

``--rate`` is OUTREACH_RATES' WeChat rate (the scheduler honours it; the default
configuration's 20 a second caps a real deployment), ``--senders`` OUTREACH_SENDERS.

Figures are printed, never asserted; the machine is shared (load average printed).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

import requests
from sqlalchemy import insert, select, text

from loyalty import db, migrate
from loyalty.members.models import ChannelIdentity, Member
from loyalty.outreach import service as svc
from loyalty.outreach.models import OutreachSend, SubscriptionCredit
from loyalty.outreach.preview import preview

APP_ID, APP_SECRET = "wxbench000000001", "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(n: int) -> None:
    now = db.utcnow()
    with db.engine().begin() as c:
        for start in range(0, n, 5000):
            rows = [dict(phone=f"139{i:08d}", referral_code=f"B{i:09d}", tier="normal", points_balance=0,
                         consent_version="b", consent_at=now, marketing_opt_in=True, sms_opt_in=False,
                         status="active", created_at=now) for i in range(start, min(n, start + 5000))]
            c.execute(insert(Member), rows)
        ids = list(c.execute(select(Member.id).order_by(Member.id)).scalars())
        for i in range(0, len(ids), 5000):
            chunk = ids[i:i + 5000]
            c.execute(insert(ChannelIdentity), [dict(member_id=m, channel="wechat", external_id=f"o-bench-{m}",
                                                     created_at=now) for m in chunk])
            c.execute(insert(SubscriptionCredit), [dict(member_id=m, template_id="SUB-MARKETING", granted_at=now)
                                                   for m in chunk])


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process (with ``children``: also of its exited, reaped children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(master: int) -> float:
    """CPU time of a server process, its exited (reaped) children and its live ones."""
    total = cpu_seconds(master, children=True)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            if ppid == master:
                total += cpu_seconds(int(entry))
    return total


def postgres_cpu(datadir: str) -> float:
    """CPU time of the PostgreSQL server: the postmaster, its exited backends, its live ones."""
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        return tree_cpu(int(f.readline()))


def baseline(api: str, k: int) -> tuple[float, float]:
    """Bare wechatpy calls: per second, and the client's CPU seconds per call."""
    from wechatpy import WeChatClient

    token = requests.get(api + "token", params={"grant_type": "client_credential", "appid": APP_ID,
                                                "secret": APP_SECRET}, timeout=5).json()["access_token"]
    client = WeChatClient(APP_ID, APP_SECRET, access_token=token)
    client.API_BASE_URL = api
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(k):
        client.message.send_subscribe_message(f"o-base-{i}", "SUB-MARKETING", {"thing1": {"value": "hi"}})
    return k / (time.perf_counter() - t0), (time.process_time() - cpu0) / k


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=1, help="scheduler processes")
    p.add_argument("--senders", type=int, default=8, help="OUTREACH_SENDERS: API calls in flight per scheduler")
    p.add_argument("--rate", type=float, default=1_000_000, help="OUTREACH_RATES for WeChat, sends a second")
    a = p.parse_args()
    from tests.support.servers import start_postgres  # the tests' throwaway server

    server = start_postgres()
    port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "bot.wechat.dev.fake_server", "--port", str(port),
                             "--app-id", APP_ID, "--secret", APP_SECRET],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/cgi-bin/"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        admin = db.make_engine(server.base_url + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE bench"))
        admin.dispose()
        url = server.base_url + "/bench"
        e = db.make_engine(url)
        migrate.upgrade(e)
        db.configure(e)
        t0 = time.perf_counter()
        seed(a.members)
        print(f"seeded {a.members} members with a WeChat openid and a credit in {time.perf_counter() - t0:.1f} s")
        now = db.utcnow()
        db.run(svc.create_broadcast, "BENCH", {}, "春季上新，会员专享", "Spring arrivals for members", now,
               actor="bench")
        t0 = time.perf_counter()
        pv = db.run(preview, "broadcast:BENCH", now, readonly=True)
        t_preview = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = db.run(svc.plan_broadcast, "BENCH", now)
        t_plan = time.perf_counter() - t0
        print(f"preview: audience {pv.audience}, control {pv.control}, would send {pv.would_send} "
              f"in {t_preview:.2f} s; planning {plan.new} ledger rows in {t_plan:.2f} s")
        for _ in range(50):
            try:
                requests.get(f"http://127.0.0.1:{port}/_fake/stats", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        env = {**os.environ, "LOYALTY_DATABASE_URL": url, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET,
               "WECHAT_TOKEN": "bench", "WECHAT_API_BASE_URL": api, "WECHAT_REDIS_URL": "",
               "OUTREACH_RATES": f"wechat={a.rate:g}", "OUTREACH_SENDERS": str(a.senders),
               "OUTREACH_QUIET_START": "0", "OUTREACH_QUIET_END": "0",
               "OUTREACH_JOURNEYS": "tier", "WEBCHAT_REDIS_URL": ""}
        t0 = time.perf_counter()
        pg_cpu0, fake_cpu0 = postgres_cpu(server.datadir), cpu_seconds(fake.pid)
        procs = [subprocess.Popen([sys.executable, "-m", "bot.outreach", "--worker", f"b{i}", "--batch", "200"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(a.workers)]
        peaks = [0.0] * a.workers
        while True:
            left = db.run(lambda s: s.execute(select(OutreachSend.id).where(
                OutreachSend.status.in_(svc.PLANNED))).first(), readonly=True)
            peaks = [max(pk, peak_rss_mb(pr.pid)) for pk, pr in zip(peaks, procs, strict=True)]
            if left is None:
                cpu = (sum(cpu_seconds(pr.pid) for pr in procs), cpu_seconds(fake.pid) - fake_cpu0,
                       postgres_cpu(server.datadir) - pg_cpu0)
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - t0
        sent = db.run(lambda s: s.execute(select(text("count(*)")).select_from(OutreachSend)
                                          .where(OutreachSend.status == "sent")).scalar(), readonly=True)
        received = len(requests.get(f"http://127.0.0.1:{port}/_fake/notices", timeout=60).json()["notices"])
        rate = sent / elapsed
        base, base_cpu = baseline(api, 2000)
        print(f"scheduler x{a.workers}, {a.senders} senders each, WeChat rate {a.rate:g}/s: "
              f"{sent} sent in {elapsed:.1f} s = {rate:.0f} sends/s "
              f"(the fake API recorded {received}); peak RSS "
              f"{', '.join(f'{pk:.0f} MB' for pk in peaks)}")
        print(f"CPU per send: scheduler {cpu[0] / sent * 1000:.2f} ms, fake API {cpu[1] / sent * 1000:.2f} ms, "
              f"PostgreSQL {cpu[2] / sent * 1000:.2f} ms (the bench's own polling included)")
        print(f"baseline: bare wechatpy calls, no ledger: {base:.0f} sends/s, client CPU {base_cpu * 1000:.2f} ms "
              f"per call; ledger+rules cost: {rate / base:.2f}x of bare sends/s, scheduler CPU per send "
              f"{cpu[0] / sent / base_cpu:.1f}x of bare")
        print(f"load average: {os.getloadavg()[0]:.2f} (2 shared cores)")
    finally:
        for pr in procs:
            pr.terminate()
            pr.wait(10)
        fake.terminate()
        fake.wait(10)
        server.stop()


if __name__ == "__main__":
    main()
