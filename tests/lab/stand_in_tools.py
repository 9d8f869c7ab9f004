#!/usr/bin/python3
# Stand-in @TOOL@ (test double) of the pyinfra-kubeadm lab; NOT Kubernetes.
#
# Installed as /usr/bin/@TOOL@ by the lab's stand-in package of that name
# (tests/lab/k8s_repo.py fills in the @...@ values). Every invocation appends one line to
# the calls log (UTC timestamp with microseconds, tool, arguments, secrets redacted). What
# only the node knows (the files named by --config and -f, the kubeconfig, which kubeadm
# files exist, the kubelet and containerd versions) goes to the lab's stand-in control
# plane (tests/lab/stand_in_control_plane.py), which answers as the real tool would; the
# files it returns are written here and the kubelet restarted where the real kubeadm does.
import datetime
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TOOL = "@TOOL@"
VERSION = "@VERSION@"  # Kubernetes release of this package, e.g. 1.35.9
CONTROL_PLANE = "@CONTROL_PLANE@"  # http://address:port of the stand-in control plane; may be ""
IMAGE_REPOSITORY = "registry.k8s.io"
CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
PAUSE_TAG = "@PAUSE_TAG@"
# Tests running the programs off the lab point this elsewhere.
CALLS_LOG = os.environ.get("STAND_IN_CALLS_LOG", "/var/log/pyinfra-kubeadm-stand-in/calls.log")
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
# The stand-in kubelet listens here while it runs with its configuration, as the real one
# does (kubeadm join's preflight: [ERROR Port-10250]; the deploy's preflight reads it too).
KUBELET_PORT = 10250
# Files kubeadm's preflight looks at.
KUBEADM_FILES = (
    ADMIN_CONF,
    KUBELET_CONF,
    "/etc/kubernetes/pki/ca.crt",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/etcd.yaml",
    "/etc/kubernetes/pki/apiserver.crt",
)
SECRET_FLAGS = ("--token", "--certificate-key", "--discovery-token", "--tls-bootstrap-token")
SECRET_PATTERNS = (
    re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"),  # bootstrap token
    re.compile(r"(?<!sha256:)\b[0-9a-f]{64}\b"),  # certificate key (a CA hash is public)
    re.compile(r"(token=)[^&\s]+"),
)


def redact(argv):
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("<redacted>")
            hide = False
            continue
        name = arg.split("=", 1)[0]
        if name in SECRET_FLAGS:
            if "=" in arg:
                arg = name + "=<redacted>"
            else:
                hide = True
        for pattern in SECRET_PATTERNS:
            arg = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "<redacted>", arg)
        out.append(arg)
    return out


def log_call(tool, argv):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    line = f"{stamp} {tool} {' '.join(shlex.quote(a) for a in redact(argv))}".rstrip() + "\n"
    try:
        os.makedirs(os.path.dirname(CALLS_LOG), mode=0o755, exist_ok=True)
        with open(CALLS_LOG, "a") as log:
            log.write(line)
    except OSError:
        pass  # not root (a version query by a user): nothing to log to


def flag(argv, name, default=""):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def command_output(argv):
    """Output of a command the stand-in runs for itself (not logged as a call)."""
    env = {**os.environ, "STAND_IN_INTERNAL": "1"}
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=10, env=env
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def kubelet_port_in_use():
    """Whether a TCP socket listens on the kubelet's port (/proc/net, as kubeadm's check)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (read(name) or "").splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == KUBELET_PORT:
                return True
    return False


def node_context(argv):
    context = {
        "kubelet_port_in_use": TOOL == "kubeadm" and kubelet_port_in_use(),
        "exists": {path: os.path.exists(path) for path in KUBEADM_FILES},
        "files": {},
        "kubelet_version": command_output(["kubelet", "--version"]).replace("Kubernetes ", ""),
        "runtime_version": "",
        "kernel": os.uname().release,
    }
    runtime = command_output(["containerd", "--version"]).split()
    if len(runtime) >= 3:
        context["runtime_version"] = f"containerd://{runtime[2]}"
    release = read("/etc/os-release") or ""
    pretty = re.search(r'^PRETTY_NAME="?([^"\n]*)', release, re.M)
    context["os_image"] = pretty.group(1) if pretty else ""
    for name in ("--config", "-f", "--filename"):
        path = flag(argv, name)
        if path:
            text = read(path)
            if text is not None:
                context["files"][path] = text
    if TOOL == "kubectl":
        path = (
            flag(argv, "--kubeconfig")
            or os.environ.get("KUBECONFIG")
            or os.path.expanduser("~/.kube/config")
        )
        context["kubeconfig"] = read(path)
    return context


def ask(path, request, timeout):
    if not CONTROL_PLANE:
        raise OSError("no stand-in control plane was configured for this package")
    data = json.dumps(request).encode()
    http = urllib.request.Request(
        CONTROL_PLANE + path, data=data, headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(http, timeout=timeout) as response:
        return json.loads(response.read())


def apply_answer(answer):
    for path in answer.get("removes", []):
        # "dir/": its contents (kubeadm reset keeps the directories themselves)
        paths = (
            [os.path.join(path, name) for name in os.listdir(path)]
            if (path.endswith("/") and os.path.isdir(path))
            else [path]
        )
        subprocess.run(["rm", "-rf", "--one-file-system", "--", *paths], check=False)
    for path, (mode, content) in sorted(answer.get("writes", {}).items()):
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        part = path + ".stand-in-part"
        descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, int(mode, 8))
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), int(mode, 8))
            handle.write(content)
        os.replace(part, path)
    for unit in answer.get("stop", []):
        subprocess.run(["systemctl", "stop", unit], check=False)
    for unit in answer.get("restart", []):
        subprocess.run(["systemctl", "restart", unit], check=False)
    sys.stdout.write(answer.get("stdout", ""))
    sys.stderr.write(answer.get("stderr", ""))
    return answer.get("exit", 0)


def images(argv):
    version = flag(argv, "--kubernetes-version", "v" + VERSION)
    repository = flag(argv, "--image-repository", IMAGE_REPOSITORY).rstrip("/")
    names = [f"{repository}/{name}:{version}" for name in CONTROL_PLANE_IMAGES]
    return names + [f"{repository}/pause:{PAUSE_TAG}"]


def crictl(argv):
    """The stand-in crictl (cri-tools, which kubeadm depends on): the etcd container of a
    control plane (its static pod manifest exists) and `exec ID etcdctl ... snapshot save
    PATH`, which writes a placeholder snapshot there; nothing else."""
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["ps"]:
        running = os.path.exists("/etc/kubernetes/manifests/etcd.yaml")
        return ("stand-in-etcd\n" if running else ""), 0
    if words[:1] == ["exec"] and "etcdctl" in words and words[-3:-1] == ["snapshot", "save"]:
        if words[1] != "stand-in-etcd":
            sys.stderr.write(f'container "{words[1]}" not found\n')
            return "", 1
        os.makedirs(os.path.dirname(words[-1]), mode=0o700, exist_ok=True)  # etcd's mount
        with open(words[-1], "w") as handle:
            handle.write(f"stand-in etcd snapshot (test double) of {socket.gethostname()}\n")
        return f"Snapshot saved at {words[-1]}\n", 0
    sys.stderr.write(f"stand-in crictl: {' '.join(words[:2])!r} is not implemented\n")
    return "", 1


def local(argv):
    """What the tool answers without the control plane; None: ask the control plane."""
    if TOOL == "crictl":
        return crictl(argv)
    words = [a for a in argv if not a.startswith("-")]
    if argv[:1] in (["version"], ["--version"]):
        if TOOL == "kubelet" and argv[0] == "--version":
            return f"Kubernetes v{VERSION}\n", 0
        return f"v{VERSION}\n", 0
    if TOOL == "kubeadm" and words[:3] == ["config", "images", "list"]:
        return "".join(f"{image}\n" for image in images(argv)), 0
    if TOOL == "kubeadm" and words[:3] == ["config", "images", "pull"]:
        # The stand-in pulls nothing: the lab's registry only mirrors the pause image.
        return "".join(f"[config/images] Pulled {image}\n" for image in images(argv)[:-1]), 0
    if TOOL == "kubeadm" and words[:2] == ["config", "validate"]:
        path = flag(argv, "--config")
        if read(path) is None:
            sys.stderr.write(f"open {path}: no such file or directory\n")
            return "", 1
        return "ok\n", 0
    return None


def kubelet(argv):
    """The kubelet service: a placeholder that fails without its configuration (as the
    real one does before kubeadm wrote it) and otherwise posts heartbeats."""
    if not os.path.exists(KUBELET_CONFIG):
        sys.stderr.write(
            f'E0000 run.go:72] "command failed" err="failed to load kubelet config file, path: '
            f'{KUBELET_CONFIG}, error: open {KUBELET_CONFIG}: no such file or directory"\n'
        )
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        address = ("::", KUBELET_PORT)
    except OSError:  # no IPv6 on this node
        listener, address = socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("", KUBELET_PORT)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen()
    conf = read(KUBELET_CONF) or ""
    match = re.search(r"system:node:([a-z0-9.-]+)", conf)
    node = match.group(1) if match else socket.gethostname()
    print(f"stand-in kubelet (test double) of node {node}: posting heartbeats", flush=True)
    context = node_context([])
    while True:
        try:
            ask("/v1/heartbeat", {"node": node, "context": context}, timeout=5)
        except (OSError, ValueError) as exc:
            print(f"heartbeat failed: {exc}", flush=True)
        time.sleep(5)


def main():
    argv = sys.argv[1:]
    if not os.environ.get("STAND_IN_INTERNAL"):
        log_call(TOOL, argv)
    answered = local(argv)
    if answered is not None:
        sys.stdout.write(answered[0])
        return answered[1]
    if TOOL == "kubelet":
        return kubelet(argv)
    request = {
        "argv": argv,
        "node": socket.gethostname(),
        "version": VERSION,
        "context": node_context(argv),
    }
    timeout = 60
    duration = re.fullmatch(r"([0-9]+)s", flag(argv, "--timeout", ""))
    if duration:
        timeout += int(duration.group(1))
    try:
        answer = ask("/v1/" + TOOL, request, timeout)
    except (OSError, ValueError) as exc:
        sys.stderr.write(
            f"stand-in {TOOL}: the stand-in control plane at {CONTROL_PLANE or '(none)'} "
            f"does not answer: {exc}\n"
        )
        return 1
    return apply_answer(answer)


if __name__ == "__main__":
    sys.exit(main())
