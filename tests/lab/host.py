"""What the lab does on the machine that runs it: packages, the bridge, background processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def run(argv: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command without stdin, capturing its output; raise with that output if it fails."""
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, **kwargs
    )
    if check and result.returncode != 0:
        output = "\n".join(filter(None, [result.stdout, result.stderr]))
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}\n{output}")
    return result


def missing_packages(packages: list[str]) -> list[str]:
    """The Debian packages of ``packages`` that are not installed on this machine."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        fields[0]
        for fields in map(str.split, result.stdout.splitlines())
        if fields[1:] == ["installed"]
    }
    return [p for p in packages if p not in installed]


def ensure_packages(packages: list[str]) -> None:
    """Install whichever of ``packages`` is missing (one apt-get update first), else nothing."""
    missing = missing_packages(packages)
    if not missing:
        return
    print(f"installing on this machine: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = ["-o", "DPkg::Lock::Timeout=300"]
    run(["apt-get", *lock_wait, "-q", "update"], env=env)
    run(
        ["apt-get", *lock_wait, "-q", "-y", "--no-install-recommends", "install", *missing], env=env
    )


def spawn(
    argv: list[str],
    log_path: Path,
    cwd: Path | None = None,
    env: dict | None = None,
    cgroup: Path | None = None,
) -> int:
    """Start ``argv`` in its own session, detached from stdin, logging to ``log_path``;
    in the cgroup v2 directory ``cgroup`` where one is given (it joins before it execs)."""

    def join_cgroup() -> None:
        (cgroup / "cgroup.procs").write_text("0")  # "0": the writing process itself

    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=join_cgroup if cgroup else None,
        )
    return process.pid


def cgroup2_mount() -> Path | None:
    """Where this machine mounts its cgroup v2 hierarchy: /sys/fs/cgroup on a unified host,
    /sys/fs/cgroup/unified on a hybrid one; None where there is none."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount, _, source = line.partition(" - ")
        if source.split()[:1] == ["cgroup2"]:
            return Path(mount.split()[4])
    return None


def make_cgroup(*parts: str) -> Path | None:
    """A cgroup v2 directory of its own below the hierarchy's root (created if missing)."""
    root = cgroup2_mount()
    if root is None:
        return None
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_cgroup(path: Path) -> None:
    """Remove an emptied cgroup directory and those below it, deepest first; a cgroup that
    still holds processes stays (rmdir refuses it)."""
    if not path.is_dir():
        return
    for directory in sorted((d for d in path.rglob("*") if d.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def is_running(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is a live process with ``marker`` in one of its arguments.

    The marker (a path only the lab uses) guards against a recorded PID that the kernel
    has since given to an unrelated process. A zombie (exited, not yet collected by its
    parent) is not running.
    """
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and any(marker.encode() in arg for arg in cmdline)


def pids_with_argument(argument: str) -> list[int]:
    """Live processes with ``argument`` in one of their command-line arguments."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_running(int(entry.name), argument):
            pids.append(int(entry.name))
    return pids


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def wait_until(condition, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_process(pid: int | None, marker: str, timeout: float = 10) -> None:
    """Stop a recorded process: SIGTERM, then SIGKILL once ``timeout`` has passed."""
    if not is_running(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not is_running(pid, marker), timeout):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_running(pid, marker), 10)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_bridge(name: str, address: str, prefixlen: int) -> None:
    """Create bridge ``name`` with ``address``, up, unless it already is."""
    if not link_exists(name):
        run(["ip", "link", "add", name, "type", "bridge"])
    addresses = run(["ip", "-o", "-4", "addr", "show", "dev", name]).stdout
    if f" {address}/{prefixlen} " not in addresses:
        run(["ip", "addr", "add", f"{address}/{prefixlen}", "dev", name])
    run(["ip", "link", "set", name, "up"])


def delete_link(name: str) -> None:
    """Delete network link ``name`` if it exists."""
    if link_exists(name):
        run(["ip", "link", "delete", name])


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this machine's mount namespace."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def unmount_under(path: Path) -> None:
    """Unmount everything mounted at or below ``path``, innermost first."""
    for point in sorted(mounts_under(path), reverse=True):
        run(["umount", point])


def remove_tree(path: Path) -> None:
    """Delete ``path`` recursively, refusing if anything is mounted below it."""
    if not path.exists():
        return
    mounted = mounts_under(path)
    if mounted:
        raise RuntimeError(f"not removing {path}: still mounted: {' '.join(mounted)}")
    run(["rm", "-rf", "--one-file-system", str(path)])
