"""``tripsearch dev elasticsearch``: run throw-away Elasticsearch clusters on loopback for development and tests.

``scripts/elasticsearch`` in a checkout is a thin wrapper of this module (it
loads this file alone, so plain ``python3`` runs it without the package's
dependencies), and ``python -m tripsearch.dev.elasticsearch`` runs it too.

The distribution is Elastic's `integ-test-zip` (a minimal build with no bundled JDK),
fetched from Maven Central with `mvn dependency:copy` into a cache outside the repository:

    ${TRIPSEARCH_CACHE:-~/.cache/tripsearch}/elasticsearch/
        elasticsearch-V.zip            downloaded once per version
        dist/elasticsearch-V/          unpacked once per version (read-only for the nodes)
        clusters/NAME/state.json       what `start` printed, kept up to date
        clusters/NAME/node-I/          config/, data/, logs/, tmp/ of node I

When run as root the nodes run as the unprivileged system user `tripsearch-es`
(created with useradd on first use), because Elasticsearch refuses to run as root.

Environment:
    TRIPSEARCH_CACHE          cache root (default ~/.cache/tripsearch)
    TRIPSEARCH_ES_VERSION     default version for `start`
    TRIPSEARCH_ES_JAVA_HOME   JDK to run Elasticsearch with (default: picked from /usr/lib/jvm)
    TRIPSEARCH_ES_JAVA_OPTS   extra JVM options appended to ES_JAVA_OPTS
"""

import argparse
import errno
import fcntl
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

# Newest integ-test-zip that Maven Central serves here and that the Python
# `elasticsearch` 8.x client talks to (see scripts/ELASTICSEARCH_NOTES.md).
DEFAULT_VERSION = "9.5.0"
DEFAULT_NAME = "tripsearch-dev"
DEFAULT_HEAP = "512m"
GROUP_ID = "org.elasticsearch.distribution.integ-test-zip"
ARTIFACT_ID = "elasticsearch"
ES_USER = "tripsearch-es"
JVM_DIRS = ("/usr/lib/jvm",)
PORT_RANGE = (20000, 32000)  # below Linux' default ephemeral range (32768-60999)
PROG = "elasticsearch"  # the prefix of its messages


class Fail(Exception):
    """An expected failure: printed as one line (plus optional detail), exit status 1."""

    def __init__(self, message, detail=None):
        super().__init__(message)
        self.detail = detail


def note(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- paths & state


def cache_dir():
    base = os.environ.get("TRIPSEARCH_CACHE") or "~/.cache/tripsearch"
    return Path(base).expanduser().absolute() / "elasticsearch"


def cluster_dir(name):
    return cache_dir() / "clusters" / name


def node_dir(name, index):
    return cluster_dir(name) / f"node-{index}"


def state_path(name):
    return cluster_dir(name) / "state.json"


def load_state(name):
    path = state_path(name)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise Fail(f"cannot read {path}: {exc}") from None


def save_state(state):
    path = state_path(state["name"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def public_state(state):
    """The state without internal bookkeeping, as printed by start/stop/status."""
    return {k: v for k, v in state.items() if not k.startswith("_")}


@contextmanager
def file_lock(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cluster_lock(name):
    return file_lock(cache_dir() / "clusters" / f".{name}.lock")


def check_name(name):
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise Fail(f"invalid cluster name {name!r} (letters, digits, '.', '_', '-')")
    return name


# ---------------------------------------------------------------- distribution


def version_tuple(version):
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def fetch_zip(version):
    root = cache_dir()
    zip_path = root / f"elasticsearch-{version}.zip"
    if zip_path.is_file() and zipfile.is_zipfile(zip_path):
        return zip_path
    mvn = shutil.which("mvn")
    if not mvn:
        raise Fail(f"Elasticsearch {version} is not cached at {zip_path} and Maven (mvn) is not installed to fetch it")
    artifact = f"{GROUP_ID}:{ARTIFACT_ID}:{version}:zip"
    log_path = root / f"mvn-{version}.log"
    note(f"downloading {artifact} with Maven (log: {log_path})")
    cmd = [mvn, "-B", "-q", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={root}"]
    with open(log_path, "wb") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root)
    if rc != 0 or not zip_path.is_file():
        text = log_path.read_text(errors="replace")
        if "Could not find artifact" in text or "Unable to find artifact" in text:
            raise Fail(f"Maven Central has no {artifact} (mvn dependency:copy failed, see {log_path})")
        errors = [ln.strip() for ln in text.splitlines() if "[ERROR]" in ln and ln.strip() != "[ERROR]"]
        reason = re.sub(r"\x1b\[[0-9;]*m", "", errors[0]) if errors else f"exit status {rc}"
        raise Fail(f"could not download {artifact}: {reason[:300]} (see {log_path})")
    return zip_path


def unpack(version):
    """Unpack the distribution once per version; returns its home directory."""
    dist_root = cache_dir() / "dist"
    home = dist_root / f"elasticsearch-{version}"
    if (home / "bin" / "elasticsearch").is_file():
        return home
    with file_lock(cache_dir() / f".dist-{version}.lock"):
        if (home / "bin" / "elasticsearch").is_file():
            return home
        zip_path = fetch_zip(version)
        tmp = dist_root / f".unpack-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for info in archive.infolist():
                    target = archive.extract(info, tmp)
                    if info.is_dir():
                        os.chmod(target, 0o755)
                    else:
                        executable = (info.external_attr >> 16) & 0o111
                        os.chmod(target, 0o755 if executable else 0o644)
        except (zipfile.BadZipFile, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise Fail(f"cannot unpack {zip_path}: {exc}") from None
        top = [p for p in tmp.iterdir()]
        if len(top) != 1 or not (top[0] / "bin" / "elasticsearch").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            raise Fail(f"{zip_path} does not look like an Elasticsearch distribution")
        shutil.rmtree(home, ignore_errors=True)
        os.chmod(dist_root, 0o755)
        top[0].rename(home)
        shutil.rmtree(tmp, ignore_errors=True)
    return home


def dist_modules(home):
    modules = home / "modules"
    return sorted(p.name for p in modules.iterdir()) if modules.is_dir() else []


# ---------------------------------------------------------------- java


def java_major(java_home):
    """Major version of the JDK at java_home from its `release` file (None if unknown)."""
    try:
        text = (Path(java_home) / "release").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="?([0-9._]+)', text, re.M)
    if not match:
        return None
    parts = match.group(1).split(".")
    return int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])


def required_java(version):
    major = version_tuple(version)[0]
    return 21 if major >= 9 else 17 if major >= 8 else 11


def find_java(version):
    need = required_java(version)
    override = os.environ.get("TRIPSEARCH_ES_JAVA_HOME")
    if override:
        if not os.access(Path(override) / "bin" / "java", os.X_OK):
            raise Fail(f"TRIPSEARCH_ES_JAVA_HOME={override} has no bin/java")
        major = java_major(override)
        if major is not None and major < need:
            raise Fail(f"Elasticsearch {version} needs Java >= {need}, TRIPSEARCH_ES_JAVA_HOME={override} is Java {major}")
        return override
    found = {}
    for base in JVM_DIRS:
        if not os.path.isdir(base):
            continue
        for entry in sorted(os.listdir(base)):
            home = os.path.realpath(os.path.join(base, entry))
            major = java_major(home)
            if major and os.access(os.path.join(home, "bin", "java"), os.X_OK):
                found.setdefault(home, major)
    eligible = [(major, home) for home, major in found.items() if major >= need]
    if not eligible:
        have = ", ".join(f"Java {m}" for m in sorted(set(found.values()))) or "none"
        raise Fail(f"Elasticsearch {version} needs a JDK >= {need} (integ-test-zip bundles none); "
                   f"found {have} in {', '.join(JVM_DIRS)}; install one or set TRIPSEARCH_ES_JAVA_HOME")
    if need <= 17 and any(m == 17 for m, _ in eligible):
        eligible = [(m, h) for m, h in eligible if m == 17]
    eligible.sort(key=lambda mh: (mh[0], "temurin" in mh[1]), reverse=True)
    return eligible[0][1]


# ---------------------------------------------------------------- unprivileged user


def es_account():
    """(uid, gid) to run the nodes as, or None to run them as the current user."""
    if os.geteuid() != 0:
        return None
    # One creation at a time: two useradd runs at once (two clusters starting on a fresh machine) can both
    # succeed, the second replacing the first's uid, and the nodes of the first then cannot write their files.
    with file_lock(cache_dir() / ".account.lock"):
        try:
            pw = pwd.getpwnam(ES_USER)
        except KeyError:
            useradd = shutil.which("useradd") or "/usr/sbin/useradd"
            if not os.access(useradd, os.X_OK):
                raise Fail(f"running as root but useradd is missing to create the user {ES_USER}") from None
            cmd = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                   "--shell", "/usr/sbin/nologin", "--comment", "tripsearch Elasticsearch test nodes", ES_USER]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode not in (0, 9):  # 9: created meanwhile by a run of another checkout
                raise Fail(f"useradd {ES_USER} failed: {result.stderr.strip() or result.returncode}") from None
            note(f"created system user {ES_USER} to run Elasticsearch (it refuses to run as root)")
            pw = pwd.getpwnam(ES_USER)
    return pw.pw_uid, pw.pw_gid


ACL_XATTR = "system.posix_acl_access"
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF


def grant_search(path, uid):
    """Let uid traverse directory `path`: a POSIX ACL entry user:uid:--x, or o+x if ACLs are unsupported."""
    st = os.stat(path)
    try:
        try:
            raw = os.getxattr(path, ACL_XATTR)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
            raw = b""
        if raw:
            count = (len(raw) - 4) // 8
            entries = {(tag, ident): perm for tag, perm, ident in
                       (struct.unpack_from("<HHI", raw, 4 + 8 * i) for i in range(count))}
        else:
            mode = st.st_mode
            entries = {(ACL_USER_OBJ, ACL_UNDEFINED_ID): (mode >> 6) & 7,
                       (ACL_GROUP_OBJ, ACL_UNDEFINED_ID): (mode >> 3) & 7,
                       (ACL_OTHER, ACL_UNDEFINED_ID): mode & 7}
        entries[(ACL_USER, uid)] = entries.get((ACL_USER, uid), 0) | 1
        mask_key = (ACL_MASK, ACL_UNDEFINED_ID)
        if mask_key in entries:
            entries[mask_key] |= 1
        else:
            entries[mask_key] = 0
            for (tag, _), perm in entries.items():
                if tag in (ACL_USER, ACL_GROUP_OBJ, ACL_GROUP):
                    entries[mask_key] |= perm
        blob = struct.pack("<I", 2) + b"".join(
            struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(entries.items()))
        os.setxattr(path, ACL_XATTR, blob)
        note(f"granted user {ES_USER} search (x) permission on {path} via an ACL so it can reach the cache")
    except OSError:
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        note(f"added o+x (traverse only) to {path} so user {ES_USER} can reach the cache")


def user_can_reach(path, account):
    uid, gid = account
    probe = ["/bin/sh", "-c", 'test -r "$1" && test -x "$1"', "sh", str(path)]
    return subprocess.call(probe, user=uid, group=gid, extra_groups=[], cwd="/") == 0


def ensure_reachable(path, account):
    """Make every ancestor of `path` traversable by the unprivileged user (e.g. /root is 0700)."""
    if user_can_reach(path, account):
        return
    uid, gid = account
    for parent in reversed(Path(path).parents):
        st = os.stat(parent)
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            grant_search(parent, uid)
    if not user_can_reach(path, account):
        raise Fail(f"user {ES_USER} cannot read {path}; set TRIPSEARCH_CACHE to a directory it can reach")


def chown_tree(path, account):
    if account is None:
        return
    uid, gid = account
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in files:
            os.chown(os.path.join(root, name), uid, gid)


# ---------------------------------------------------------------- ports & config


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # like Elasticsearch itself: TIME_WAIT leftovers of a stopped node do not block a restart
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count):
    chosen = set()
    for _ in range(2000):
        port = random.randrange(*PORT_RANGE)
        if port not in chosen and port_free(port):
            chosen.add(port)
            if len(chosen) == count:
                return list(chosen)
    raise Fail(f"could not find {count} free loopback ports in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def master_eligible(count):
    """Indexes of the master-eligible nodes. With 2 nodes only node 0 is: a 2-node voting configuration
    cannot lose either node anyway, and this makes `stop --node 1` (cluster stays up, yellow) and
    `stop --node 0` (no master until it is back) deterministic. With 3+ nodes all are master-eligible."""
    return [0] if count == 2 else list(range(count))


def write_node_config(state, index, home):
    node = state["_nodes"][index]
    ndir = Path(node["dir"])
    conf = ndir / "config"
    settings = {
        "cluster.name": state["name"],
        "node.name": node["name"],
        "network.host": "127.0.0.1",
        "http.port": node["http_port"],
        "transport.port": node["transport_port"],
        "path.data": str(ndir / "data"),
        "path.logs": str(ndir / "logs"),
        "action.destructive_requires_name": False,
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    if len(state["_nodes"]) == 1:
        settings["discovery.type"] = "single-node"
    else:
        settings["discovery.seed_hosts"] = [f"127.0.0.1:{n['transport_port']}" for n in state["_nodes"]]
        masters = master_eligible(len(state["_nodes"]))
        if index not in masters:
            settings["node.roles"] = ["data", "ingest", "remote_cluster_client"]
        if not state.get("_bootstrapped"):
            settings["cluster.initial_master_nodes"] = [state["_nodes"][i]["name"] for i in masters]
    if (home / "modules" / "x-pack-security").is_dir():
        settings["xpack.security.enabled"] = False
    lines = ["# Written by scripts/elasticsearch; rewritten on each start."]
    lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
    (conf / "elasticsearch.yml").write_text("\n".join(lines) + "\n")


def create_cluster(name, nodes, version, heap, home, account):
    cdir = cluster_dir(name)
    if cdir.exists():
        shutil.rmtree(cdir)
    cdir.mkdir(parents=True)
    os.chmod(cdir, 0o755)
    ports = pick_ports(2 * nodes)
    state = {
        "name": name,
        "version": version,
        "urls": [],
        "pids": [None] * nodes,
        "cluster_dir": str(cdir),
        "_heap": heap,
        "_bootstrapped": nodes == 1,
        "_nodes": [],
    }
    for i in range(nodes):
        ndir = node_dir(name, i)
        shutil.copytree(home / "config", ndir / "config")
        for sub in ("data", "logs", "tmp"):
            (ndir / sub).mkdir(parents=True, exist_ok=True)
        state["_nodes"].append({
            "name": f"{name}-node-{i}",
            "dir": str(ndir),
            "http_port": ports[2 * i],
            "transport_port": ports[2 * i + 1],
            "pgid": None,
        })
        state["urls"].append(f"http://127.0.0.1:{ports[2 * i]}")
    for i in range(nodes):
        write_node_config(state, i, home)
        chown_tree(node_dir(name, i), account)
    save_state(state)
    return state


# ---------------------------------------------------------------- processes


def read_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def node_pid_alive(state, index):
    """True if the recorded server pid of node `index` is still that node's JVM."""
    pid = state["pids"][index]
    if not pid:
        return False
    cmdline = read_cmdline(pid)
    return "org.elasticsearch" in cmdline and state["_nodes"][index]["dir"] in cmdline


def group_alive(pgid):
    """True if a live (non-zombie) process is in process group pgid (each node runs in its own session)."""
    if not pgid:
        return False
    try:  # reap nodes started by this very process, so they do not linger as zombies
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def node_running(state, index):
    return node_pid_alive(state, index) or group_alive(state["_nodes"][index].get("pgid"))


def http_json(url, timeout=3.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def tail(path, lines=30):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def node_log_tail(state, index):
    logs = Path(state["_nodes"][index]["dir"]) / "logs"
    parts = []
    for path in (logs / f"{state['name']}.log", logs / "console.log"):
        text = tail(path)
        if text.strip():
            parts.append(f"--- tail of {path} ---\n{text}")
    return "\n".join(parts) or f"(no log output in {logs})"


def launch_node(state, index, home, java, account):
    node = state["_nodes"][index]
    ndir = Path(node["dir"])
    for key in ("http_port", "transport_port"):
        if not port_free(node[key]):
            raise Fail(f"port {node[key]} ({key.replace('_', ' ')}) of node {index} of cluster {state['name']} "
                       f"is taken by another process")
    (ndir / "es.pid").unlink(missing_ok=True)
    heap = state["_heap"]
    java_opts = f"-Xms{heap} -Xmx{heap} {os.environ.get('TRIPSEARCH_ES_JAVA_OPTS', '')}".strip()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(ndir),
        "ES_JAVA_HOME": java,  # ES ignores JAVA_HOME (and warns about it)
        "ES_PATH_CONF": str(ndir / "config"),
        "ES_JAVA_OPTS": java_opts,
        "ES_TMPDIR": str(ndir / "tmp"),
    }
    cmd = [str(home / "bin" / "elasticsearch"), "-p", str(ndir / "es.pid")]
    user_args = {}
    if account is not None:
        user_args = {"user": account[0], "group": account[1], "extra_groups": []}
    with open(ndir / "logs" / "console.log", "ab") as console:
        console.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting node {index}\n".encode())
        console.flush()
        proc = subprocess.Popen(cmd, cwd=ndir / "logs", env=env, stdin=subprocess.DEVNULL, stdout=console,
                                stderr=subprocess.STDOUT, start_new_session=True, **user_args)
    node["pgid"] = proc.pid
    return proc


def read_pidfile(state, index):
    try:
        return int((Path(state["_nodes"][index]["dir"]) / "es.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def wait_cluster(state, procs, timeout):
    """Wait until every node answers and reports the cluster yellow/green with all nodes."""
    want = len(state["_nodes"])
    deadline = time.monotonic() + timeout
    query = "/_cluster/health?timeout=1s&master_timeout=1s"
    last = "no node answered yet"
    while True:
        for index, proc in procs.items():
            code = proc.poll()
            if code is not None:
                raise Fail(f"node {index} of cluster {state['name']} exited with status {code} during start-up",
                           node_log_tail(state, index))
        healths = [http_json(url + query, timeout=3) for url in state["urls"]]
        ok = all(h and h.get("status") in ("yellow", "green") and h.get("number_of_nodes", 0) >= want
                 for h in healths)
        pids_known = all(read_pidfile(state, i) for i in procs)
        if ok and pids_known:
            return healths[0]
        answered = [h for h in healths if h]
        if answered:
            h = answered[0]
            last = (f"{len(answered)}/{want} nodes answer; status={h.get('status') or h.get('error', {}).get('type')}, "
                    f"nodes={h.get('number_of_nodes')}")
        if time.monotonic() > deadline:
            first = next(iter(procs))
            raise Fail(f"cluster {state['name']} not ready within {timeout:.0f}s ({last})", node_log_tail(state, first))
        time.sleep(0.5)


def signal_node(state, index, sig):
    pid = state["pids"][index]
    if pid and node_pid_alive(state, index):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    pgid = state["_nodes"][index].get("pgid")
    if pgid and group_alive(pgid) and (sig == signal.SIGKILL or not node_pid_alive(state, index)):
        # the launcher (and a server not yet in the pid file) live in the node's own session
        leader = read_cmdline(pgid)
        if not leader or "elasticsearch" in leader:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def stop_nodes(state, indexes, timeout):
    for index in indexes:
        signal_node(state, index, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(node_running(state, i) for i in indexes) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = [i for i in indexes if node_running(state, i)]
    for index in killed:
        signal_node(state, index, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(node_running(state, i) for i in indexes) and time.monotonic() < deadline:
        time.sleep(0.1)
    for index in indexes:
        if node_running(state, index):
            raise Fail(f"node {index} of cluster {state['name']} (pid {state['pids'][index]}) did not die")
        state["pids"][index] = None
        state["_nodes"][index]["pgid"] = None
    if killed:
        note(f"node(s) {killed} did not stop within {timeout:.0f}s; killed with SIGKILL")
    save_state(state)


def start_nodes(state, indexes, timeout):
    """(Re)start the given nodes of an existing cluster on their ports and data; wait for the cluster."""
    version = state["version"]
    home = unpack(version)
    java = find_java(version)
    account = es_account()
    if account is not None:
        ensure_reachable(home / "bin" / "elasticsearch", account)
        ensure_reachable(node_dir(state["name"], 0) / "config", account)
    for index in range(len(state["_nodes"])):
        write_node_config(state, index, home)
        chown_tree(Path(state["_nodes"][index]["dir"]) / "config", account)
    started = time.monotonic()
    procs = {}
    try:
        for index in indexes:
            procs[index] = launch_node(state, index, home, java, account)
        save_state(state)
        wait_cluster(state, procs, timeout)
    except BaseException:
        for index in procs:
            state["pids"][index] = read_pidfile(state, index)
        try:
            stop_nodes(state, list(procs), timeout=15)
        except Fail as exc:
            note(f"while cleaning up: {exc}")
        raise
    for index in indexes:
        state["pids"][index] = read_pidfile(state, index)
    state["startup_seconds"] = round(time.monotonic() - started, 1)
    if not state.get("_bootstrapped"):
        state["_bootstrapped"] = True  # drop cluster.initial_master_nodes for later restarts
        for index in range(len(state["_nodes"])):
            write_node_config(state, index, home)
    save_state(state)
    return state


# ---------------------------------------------------------------- commands


def parse_heap(value):
    if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]?", value):
        raise argparse.ArgumentTypeError(f"invalid heap size {value!r} (e.g. 512m, 1g)")
    return value


def positive_int(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


@contextmanager
def locked_cluster(args):
    """Hold the lock of the cluster ``args.name``; yield its name and saved state (None: there is no such cluster)."""
    name = check_name(args.name)
    with cluster_lock(name):
        yield name, load_state(name)


def check_node(name, state, node):
    """Fail unless the cluster has a node number ``node``."""
    count = len(state["_nodes"])
    if not 0 <= node < count:
        raise Fail(f"cluster {name} has no node {node} (nodes 0..{count - 1})")


def cmd_start(args):
    with locked_cluster(args) as (name, state):
        if state is not None:
            if args.version and args.version != state["version"]:
                raise Fail(f"cluster {name} was created with Elasticsearch {state['version']}, not {args.version}; "
                           f"run `stop --name {name} --clean` first")
            if args.nodes and args.nodes != len(state["_nodes"]):
                raise Fail(f"cluster {name} has {len(state['_nodes'])} node(s), not {args.nodes}; "
                           f"run `stop --name {name} --clean` first")
            if args.heap:
                state["_heap"] = args.heap
            down = [i for i in range(len(state["_nodes"])) if not node_running(state, i)]
            if not down:
                print(json.dumps(public_state(state)))
                return 0
        else:
            version = args.version or os.environ.get("TRIPSEARCH_ES_VERSION") or DEFAULT_VERSION
            if not re.fullmatch(r"\d+\.\d+\.\d+", version):
                raise Fail(f"invalid Elasticsearch version {version!r} (expected e.g. {DEFAULT_VERSION})")
            home = unpack(version)
            find_java(version)  # fail before creating anything
            account = es_account()
            if account is not None:
                ensure_reachable(home / "bin" / "elasticsearch", account)
            state = create_cluster(name, args.nodes or 1, version, args.heap or DEFAULT_HEAP, home, account)
            down = list(range(len(state["_nodes"])))
        state = start_nodes(state, down, args.timeout)
        print(json.dumps(public_state(state)))
    return 0


def cmd_restart_node(args):
    with locked_cluster(args) as (name, state):
        if state is None:
            raise Fail(f"no cluster named {name} (start it first)")
        check_node(name, state, args.node)
        stop_nodes(state, [args.node], args.timeout)
        state = start_nodes(state, [args.node], args.timeout)
        print(json.dumps(public_state(state)))
    return 0


def cmd_stop(args):
    with locked_cluster(args) as (name, state):
        if state is None:
            note(f"no cluster named {name}; nothing to stop")
            return 0
        if args.node is not None:
            check_node(name, state, args.node)
            if args.clean:
                raise Fail("--clean removes the whole cluster; it cannot be combined with --node")
            indexes = [args.node]
        else:
            indexes = list(range(len(state["_nodes"])))
        stop_nodes(state, indexes, args.timeout)
        if args.clean:
            shutil.rmtree(cluster_dir(name))
            note(f"removed {cluster_dir(name)}")
        print(json.dumps(public_state(state)))
    return 0


def cmd_status(args):
    name = check_name(args.name)
    state = load_state(name)
    if state is None:
        print(json.dumps({"name": name, "urls": [], "pids": [], "up": [], "running": False}))
        note(f"no cluster named {name}")
        return 1
    up = []
    health = None
    for index, url in enumerate(state["urls"]):
        # not `GET /`: integ-test-zip lacks the rest-root module, so `/` answers 405 there
        answer = http_json(url + "/_nodes/_local?filter_path=nodes.*.name", timeout=3) \
            if node_running(state, index) else None
        up.append(bool(answer and answer.get("nodes")))
        if up[-1] and health is None:
            h = http_json(url + "/_cluster/health?timeout=1s&master_timeout=1s", timeout=5) or {}
            health = h.get("status") or (h.get("error") or {}).get("type")
    result = dict(public_state(state), up=up, running=all(up), health=health)
    print(json.dumps(result))
    return 0 if all(up) else 1


def build_parser(prog="tripsearch dev elasticsearch"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start, stop and inspect throw-away Elasticsearch clusters on 127.0.0.1 "
                    "(integ-test-zip from Maven Central, cached in "
                    "${TRIPSEARCH_CACHE:-~/.cache/tripsearch}/elasticsearch).",
        epilog=f"Run `{prog} COMMAND --help` for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add_name(p):
        p.add_argument("--name", default=DEFAULT_NAME, help=f"cluster name (default {DEFAULT_NAME})")

    p = sub.add_parser("start", help="start a cluster (or the stopped nodes of an existing one)",
                       description="Start cluster NAME and print one line of JSON "
                                   '{"name", "urls", "pids", "version", ...}. If the cluster exists, its stopped '
                                   "nodes are restarted on the same ports and data.")
    add_name(p)
    p.add_argument("--nodes", type=positive_int, help="number of nodes of a new cluster (default 1)")
    p.add_argument("--heap", type=parse_heap, help=f"JVM heap per node, -Xms/-Xmx (default {DEFAULT_HEAP})")
    p.add_argument("--version", help="Elasticsearch version of a new cluster (default $TRIPSEARCH_ES_VERSION "
                                     f"or {DEFAULT_VERSION})")
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait for the cluster (default 180)")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("stop", help="stop all nodes of a cluster, or one node",
                       description="Stop the nodes of cluster NAME: SIGTERM, then SIGKILL after --timeout. "
                                   "Data and ports are kept so `start` can bring them back.")
    add_name(p)
    p.add_argument("--node", type=int, metavar="I", help="stop only node I (0-based)")
    p.add_argument("--timeout", type=float, default=30, help="seconds before SIGKILL (default 30)")
    p.add_argument("--clean", action="store_true", help="also delete the cluster's data, logs and state")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("restart-node", help="stop and start node I of a cluster on the same ports and data",
                       description="Stop node I of cluster NAME if it runs, start it again, wait for the cluster.")
    add_name(p)
    p.add_argument("--node", type=int, metavar="I", required=True, help="node index (0-based)")
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait (default 180)")
    p.set_defaults(func=cmd_restart_node)

    p = sub.add_parser("status", help="print the cluster state and which nodes answer",
                       description="Print the state JSON plus up[] per node; exit 0 if all nodes answer, else 1.")
    add_name(p)
    p.set_defaults(func=cmd_status)
    return parser


def main(argv=None, prog="tripsearch dev elasticsearch"):
    """Run one command (``start``, ``stop``, ``restart-node``, ``status``); return the exit status."""
    args = build_parser(prog).parse_args(argv)
    try:
        return args.func(args)
    except Fail as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
