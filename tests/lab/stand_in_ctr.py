#!/usr/bin/python3
# Stand-in for `ctr run` (test double) of the pyinfra-kubeadm lab; NOT containerd's ctr.
#
# runc cannot start containers in the lab's nodes, so tests/lab/test_kuboard_server.py
# diverts the real /usr/bin/ctr to /usr/bin/ctr.real (dpkg-divert) and installs this in its
# place. Every command but `run` is the real ctr's (pulls, image lists, task deletes). `run`
# does in the node what Kuboard's image does at its first start, no more: it echoes the
# initial admin password as Kuboard's entrypoint does (the unit's script must drop that
# line), creates etcd-data in the directory mounted as /data, and answers HTTP on
# KUBOARD_SERVER_PORT. Each `run` appends its options to the calls log, values redacted.
import datetime
import os
import sys

REAL = "/usr/bin/ctr.real"
CALLS_LOG = "/var/log/pyinfra-kubeadm-stand-in/calls.log"

args = sys.argv[1:]
if args[2:3] != ["run"]:  # ctr --namespace NAME <command> ...
    os.execv(REAL, [REAL, *args])
env, env_file, data, logged, words = {}, "", "", [], iter(args[3:])
for word in words:
    if word in ("--env", "--env-file", "--mount"):
        value = next(words)
        if word == "--env":
            key, _, env[key] = value.partition("=")
            logged.append(f"--env {key}=<value>")
        elif word == "--env-file":
            env_file = value
            logged.append(f"--env-file {value}")
        else:
            data = dict(p.split("=", 1) for p in value.split(",") if "=" in p)["src"]
            logged.append(f"--mount {value}")
    else:
        logged.append(word)
os.makedirs(os.path.dirname(CALLS_LOG), exist_ok=True)
with open(CALLS_LOG, "a") as log:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    log.write(f"{now} ctr {' '.join(args[:3] + logged)}\n")
if env_file:
    with open(env_file) as handle:
        password = handle.read().strip().partition("=")[2]
    print(f"设置 KuboardAdmin 的默认密码（仅第一次启动时设置） {password}", flush=True)
os.makedirs(os.path.join(data, "etcd-data"), exist_ok=True)
port = env.get("KUBOARD_SERVER_PORT", "80")
os.execv(sys.executable, [sys.executable, "-m", "http.server", port, "--directory", data])
