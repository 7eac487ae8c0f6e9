"""A private nginx for tests, with the recipe's site (deploy/nginx) rendered for loopback.

``render_site`` keeps the recipe's ``map`` and upstream options and includes its
locations file unchanged, in a plain-HTTP server on a loopback port (the TLS server
block is checked separately with ``nginx -t``). The master runs in the foreground
(``daemon off``) and is stopped by pid; nothing touches the system's nginx.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.support import REPO, free_port

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
SITE = REPO / "deploy" / "nginx" / "livehub.conf"
LOCATIONS = REPO / "deploy" / "nginx" / "livehub-locations.conf"


def block(text: str, head: str) -> str:
    """The top-level block of the site file that starts with ``head`` (e.g. ``map``)."""
    m = re.search(rf"^{head}\b.*?^\}}\n", text, re.S | re.M)
    if m is None:
        raise AssertionError(f"no {head!r} block in {SITE}")
    return m.group(0)


def upstream(text: str, ports: list[int]) -> str:
    """The recipe's upstream with its server lines pointed at ``ports`` (options kept)."""
    up = block(text, "upstream livehub")
    options = re.search(r"^\s*server\s+\S+\s*([^;]*);", up, re.M)
    assert options is not None, "the upstream lists no server"
    servers = "".join(f"    server 127.0.0.1:{p} {options.group(1)};\n" for p in ports)
    body = re.sub(r"^\s*server\s+[^;]*;\n", "", up, flags=re.M)
    return body.replace("{\n", "{\n" + servers, 1)


def main_conf(prefix: Path, http_body: str) -> str:
    temp = "".join(f"    {kind}_temp_path {prefix / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} info;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n    access_log {prefix / 'access.log'};\n{temp}{http_body}}}\n")


class Nginx:
    def __init__(self, upstream_ports: list[int]) -> None:
        assert NGINX is not None
        self.prefix = Path(tempfile.mkdtemp(prefix="livehub-nginx-"))
        self.port = free_port()
        site = SITE.read_text()
        server = (f"server {{\n    listen 127.0.0.1:{self.port};\n    server_name localhost;\n"
                  f"    include {LOCATIONS};\n}}\n")
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(main_conf(self.prefix, block(site, "map")
                                       + upstream(site, upstream_ports) + server))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def test_config(self) -> subprocess.CompletedProcess[str]:
        assert NGINX is not None
        return subprocess.run([NGINX, "-t", "-c", str(self.conf), "-p", str(self.prefix)],
                              capture_output=True, text=True, timeout=30, check=False)

    def start(self) -> Nginx:
        assert NGINX is not None
        checked = self.test_config()
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(self.prefix), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.error_log()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + "/healthz", timeout=0.5)
                return self
            time.sleep(0.05)
        raise RuntimeError("nginx did not start: " + self.error_log())

    def error_log(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.prefix, ignore_errors=True)
