"""A real two-node Ray cluster on this machine for the cluster tests: a head and a second node, each started
with ``ray start ... --block`` in its own process group and a private temp dir (so nothing else on the machine
joins it, and killing a node's process group is a node loss)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_NODES = """
import json, ray
ray.init(address="{address}", logging_level="ERROR", log_to_driver=False)
print(json.dumps([{{"id": n["NodeID"], "head": "node:__internal_head__" in n["Resources"]}}
                  for n in ray.nodes() if n["Alive"]]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    temp_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def nodes(self) -> list[dict]:
        import json

        out = subprocess.run([sys.executable, "-c", _NODES.format(address=self.address)], env=self.env,
                             capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else []

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)
        # processes Ray started in other sessions still carry the private temp dir in their command line
        subprocess.run(["pkill", "-9", "-f", str(self.temp_dir)], capture_output=True)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_cluster(cpus_per_node: int = 1) -> Cluster:
    ray_bin = Path(sys.executable).with_name("ray")
    temp = Path(tempfile.mkdtemp(prefix="nasray-", dir="/tmp"))
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0",
               # a lost node is declared dead after ~3 s instead of ~30 s
               RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="1000",
               RAY_health_check_failure_threshold="3")
    env.pop("RAY_ADDRESS", None)
    cluster = Cluster(f"127.0.0.1:{port}", env, temp)
    common = ["--num-cpus", str(cpus_per_node), "--num-gpus", "0", "--block", "--disable-usage-stats"]
    cluster.procs["head"] = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--port", str(port), "--temp-dir", str(temp), "--include-dashboard=false",
         *common], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(cluster.nodes()) < 1:
        time.sleep(1)
    cluster.procs["worker"] = subprocess.Popen(
        [str(ray_bin), "start", "--address", cluster.address, *common], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    while time.time() < deadline and len(cluster.nodes()) < 2:
        time.sleep(1)
    if len(cluster.nodes()) < 2:
        cluster.stop()
        raise RuntimeError("the two-node Ray cluster did not come up within 120 s")
    return cluster
