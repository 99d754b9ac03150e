"""Docker engines on other machines through OpenSSH's own `ssh`: one login per host and run.

A master connection (ControlMaster, in a private 0700 folder) logs in once; over it the far
side's shell says where its engine listens (DOCKER_HOST, else /var/run/docker.sock), and that
socket is forwarded to a local one there (`-O forward -L LOCAL.sock:REMOTE`); the SDK then talks
to unix://LOCAL.sock. Why OpenSSH and not paramiko: it reads the user's whole ~/.ssh/config as
`ssh HOST` does (aliases, Port, User, IdentityFile, ProxyJump, ProxyCommand, Include, Match),
keeps its host-key checks, and needs no docker CLI on the host; a container cycle through the
forwarded socket cost 1.1-1.25x local here, against 3.6-4x for paramiko with dial-stdio.
Host keys: StrictHostKeyChecking=yes and UpdateHostKeys=no, so nothing is ever added or trusted
that known_hosts does not already hold. Every ssh error becomes one line naming the host.
"""

import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import docker

from lab.backends import BackendUnavailable
from lab.backends.docker_input import SSH_HOST

LOGIN_TIMEOUT_S = 45    # a login through a bastion takes two; ConnectTimeout bounds each TCP try
QUERY_TIMEOUT_S = 20
# Never prompt (no terminal here), never trust or record a host key known_hosts lacks, notice a
# vanished host within ~15 s, and take none of the config's own forwardings or remote command.
MASTER_OPTIONS = ("BatchMode=yes", "StrictHostKeyChecking=yes", "UpdateHostKeys=no",
                  "ControlMaster=yes", "ControlPersist=no", "ExitOnForwardFailure=yes",
                  "ClearAllForwardings=yes", "ServerAliveInterval=5", "ServerAliveCountMax=3",
                  "ConnectTimeout=10", "RemoteCommand=none", "ForwardAgent=no",
                  "ForwardX11=no", "PermitLocalCommand=no",
                  "LogLevel=INFO")  # a forward's "open failed" is said at INFO, not ERROR
CLIENT_OPTIONS = ("BatchMode=yes", "ControlMaster=no", "LogLevel=ERROR")

_URL = SSH_HOST  # one definition of an ssh:// host's form: --hosts checks it, this reads it

# Run by the host's login shell, builtins only (a host may have no docker CLI, even no PATH):
# where its engine listens, whether that socket is there and ours to use, and TLS on tcp.
WHERE_IS_THE_ENGINE = (
    'h=${DOCKER_HOST:-}; if [ -z "$h" ]; then h=unix:///var/run/docker.sock; '
    'if [ ! -S /var/run/docker.sock ] && [ -n "${XDG_RUNTIME_DIR:-}" ] && '
    '[ -S "$XDG_RUNTIME_DIR/docker.sock" ]; then h="unix://$XDG_RUNTIME_DIR/docker.sock"; fi; fi; '
    'p=${h#unix://}; s=missing; if [ "$p" = "$h" ]; then s=other; elif [ -S "$p" ]; then '
    'if [ -r "$p" ] && [ -w "$p" ]; then s=ok; else s=denied; fi; fi; '
    'printf "%s\\n%s\\n%s\\n" "$h" "$s" "${DOCKER_TLS_VERIFY:-}"')

_OPEN = set()  # tunnels to close at exit, whatever way the lab ends


def split_url(url):
    """ssh://[user@]host[:port] -> (options for ssh, destination): the port only when the URL
    names one (else ~/.ssh/config's Port, else 22), never a password."""
    match = _URL.match(url)
    if not match or (match["port"] and not 1 <= int(match["port"]) <= 65535):
        raise BackendUnavailable(f"{url!r} is not an ssh://[user@]host[:port] URL (a host or "
                                 f"~/.ssh/config alias: letters, digits, '.', '_', '-')")
    host = match["host"].strip("[]")
    options = ["-p", match["port"]] if match["port"] else []
    return options, f"{match['user']}@{host}" if match["user"] else host


def _ssh():
    found = shutil.which("ssh")
    if not found:
        raise BackendUnavailable("the `ssh` command (OpenSSH's client) is not installed here; "
                                 "ssh:// hosts are reached through it: install openssh-client")
    return found


def _die_with_parent():  # pragma: no cover (runs in the child between fork and exec)
    """Linux: ssh gets SIGTERM when the thread that started it ends, so a lab killed with
    SIGKILL leaves no master connection behind (connections are opened on the main thread)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 (no prctl: atexit and close() still end it)
        pass


def _private_folder():
    """A 0700 folder (nobody else reaches its sockets) whose path is short enough for them: a
    socket's path holds 104 bytes on macOS, 108 on Linux, and ssh adds 17 to the control's."""
    base = tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="mclab-ssh-", dir=base if len(base) <= 60 else "/tmp")


def _lines(text):
    """ssh's own messages, without the noise it prints on every run."""
    return [line.strip() for line in text.splitlines() if line.strip()
            and not line.startswith(("Pseudo-terminal", "@@@@", "Warning: Permanently"))]


def config_of(name, options, destination):
    """What ssh makes of the destination from ~/.ssh/config (`ssh -G`: no connection), or
    BackendUnavailable with ssh's own line when the config does not parse."""
    try:
        done = subprocess.run([_ssh(), "-G", *options, "--", destination], capture_output=True,
                              text=True, timeout=QUERY_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(f"host {name}: `ssh -G {destination}` did not finish within "
                                 f"{QUERY_TIMEOUT_S} s (a Match exec in ~/.ssh/config?)") from None
    if done.returncode != 0:
        said = _lines(done.stderr)
        line = next((l for l in said if "line " in l or "config" in l.lower()),
                    said[0] if said else f"exit status {done.returncode}")
        raise BackendUnavailable(f"host {name}: ssh cannot read its configuration: {line[:240]}; "
                                 f"fix it (`ssh -G {destination}` shows what ssh makes of it)")
    found = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        found.setdefault(key.lower(), value.strip())
    return found


def refusal(name, text, config):
    """One line for a failed login, from ssh's stderr; never a key or a password."""
    said = _lines(text)
    everything = " ".join(said)
    where = f"{config.get('hostname', '?')} port {config.get('port', '22')}"
    via = config.get("proxyjump") or (config.get("proxycommand") and "its ProxyCommand")
    via = f" (through {via})" if via and via != "none" else ""
    if "IDENTIFICATION HAS CHANGED" in everything or re.search(r"Host key for .* has changed",
                                                                 everything):
        return (f"host {name}: its SSH host key differs from the one in ~/.ssh/known_hosts (a "
                f"reinstalled machine, or someone in between); check its fingerprint, then "
                f"replace the line (ssh-keygen -R)")
    if "Host key verification failed" in everything or "host key is known" in everything:
        return (f"host {name}: its SSH host key is not in ~/.ssh/known_hosts, and an unknown "
                f"host is never trusted blindly; log in once with `ssh` under the very name you "
                f"give here and compare the fingerprint, or add its key from a trusted source")
    if "Permission denied" in everything or "Too many authentication failures" in everything:
        return (f"host {name}: the SSH login was refused (no key of yours is authorised there, or "
                f"it needs a passphrase or password: nothing is asked here, load the key into "
                f"ssh-agent); add your public key to its ~/.ssh/authorized_keys, or name the key "
                f"with IdentityFile in ~/.ssh/config")
    resolve = re.search(r"Could not resolve hostname ([^:\s]+)", everything)
    if resolve:
        return (f"host {name}: unknown host name {resolve.group(1)!r}{via} (it does not "
                f"resolve); check the name, its ~/.ssh/config entry, or use its address")
    # ssh names the address and port it tried: the host's, or the bastion's on the way there
    tried = next(filter(None, (re.search(r"connect to host (\S+) port (\d+): (.+?)\.?$", line)
                               for line in said)), None)
    if tried:
        return (f"host {name}: nothing answers on {tried.group(1)} port {tried.group(2)}"
                f"{via} ({tried.group(3).strip().lower()}); is the machine up and its sshd "
                f"listening there?")
    for reason in ("Connection refused", "Connection timed out", "No route to host",
                   "Network is unreachable", "Operation timed out"):
        if reason in everything:
            return (f"host {name}: nothing answers on {where}{via} ({reason.lower()}); is the "
                    f"machine up and its sshd listening there?")
    if "line " in everything and ("config" in everything or "Bad" in everything):
        return f"host {name}: ssh cannot read its configuration: {said[0][:240]}"
    last = said[-1][:240] if said else "ssh ended without a word"
    return f"host {name}: the SSH connection to {where}{via} failed: {last}"


class Tunnel:
    """One master connection to `url` and the far engine's socket forwarded to a local one."""

    def __init__(self, url, name):
        self.url, self.name = url, name
        self.options, self.destination = split_url(url)
        self.folder = self.master = self.remote = None
        self.socket_state = None  # ok, denied, missing, other: the far socket as its user sees it
        self.config = {}

    @property
    def control(self):
        return os.path.join(self.folder, "ctl")

    @property
    def local_socket(self):
        return os.path.join(self.folder, "docker.sock")

    @property
    def log(self):
        return os.path.join(self.folder, "ssh.log")

    def said(self):
        try:
            with open(self.log, errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def open(self):
        """Log in once, find the engine, forward its socket; BackendUnavailable in one line."""
        self.config = config_of(self.name, self.options, self.destination)
        self.folder = _private_folder()
        _OPEN.add(self)
        try:
            self._login()
            self._find_engine()
            forwarded = self._client("-O", "forward", "-L",
                                     f"{self.local_socket}:{self.remote_target()}")
            if forwarded.returncode != 0:
                raise BackendUnavailable(f"host {self.name}: ssh would not forward the Docker "
                                         f"socket: {' '.join(_lines(forwarded.stderr))[:240]}")
        except BaseException:  # a refusal, Ctrl-C: nothing of this connection is left behind
            self.close()
            raise
        return self

    def _login(self):
        command = [_ssh(), "-M", "-S", self.control, "-nNT",
                   *(part for option in MASTER_OPTIONS for part in ("-o", option)),
                   *self.options, "--", self.destination]
        with open(self.log, "w") as log:
            # A session of its own: Ctrl-C reaches the lab, which then still needs this
            # connection to stop the host's containers, and closes it after.
            self.master = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        deadline = time.monotonic() + LOGIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.master.poll() is not None:
                raise BackendUnavailable(refusal(self.name, self.said(), self.config))
            if os.path.exists(self.control) and self._client("-O", "check").returncode == 0:
                return
            time.sleep(0.05)
        raise BackendUnavailable(f"host {self.name}: no SSH login within {LOGIN_TIMEOUT_S} s "
                                 f"({self.config.get('hostname')} port "
                                 f"{self.config.get('port')}); is the machine up?")

    def _client(self, *args, remote_command=None, timeout=QUERY_TIMEOUT_S):
        """An ssh command over the master connection (no second login)."""
        command = [_ssh(), "-S", self.control,
                   *(part for option in CLIENT_OPTIONS for part in ("-o", option)),
                   *args, "--", self.destination, *([remote_command] if remote_command else [])]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(command, 255, "", f"no answer within {timeout} s")

    def _find_engine(self):
        """Where the engine listens, as the host's own shell says (DOCKER_HOST of its session,
        e.g. set by sshd's SetEnv, else the usual socket)."""
        script = "exec /bin/sh -c " + shlex.quote(WHERE_IS_THE_ENGINE)
        done = self._client("-T", remote_command=script)
        lines = done.stdout.splitlines()
        if done.returncode != 0 or len(lines) < 2:
            said = " ".join(_lines(done.stderr))[:200] or "no answer"
            raise BackendUnavailable(f"host {self.name}: SSH works but its shell would not say "
                                     f"where Docker listens ({said}); the lab runs /bin/sh there")
        self.remote, self.socket_state = lines[0].strip(), lines[1].strip()
        tls = lines[2].strip() if len(lines) > 2 else ""
        if self.remote.startswith("tcp://") and tls not in ("", "0"):
            raise BackendUnavailable(f"host {self.name}: its DOCKER_HOST is {self.remote} with TLS "
                                     f"(DOCKER_TLS_VERIFY): the lab forwards a plain socket; set "
                                     f"DOCKER_HOST to the engine's unix socket for this user")
        if self.socket_state == "other" and not self.remote.startswith("tcp://"):
            raise BackendUnavailable(f"host {self.name}: its DOCKER_HOST is {self.remote!r}; the "
                                     f"lab forwards a unix:// or tcp:// engine only: set "
                                     f"DOCKER_HOST to the engine's unix socket for this user")

    def remote_target(self):
        if self.remote.startswith("unix://"):
            return self.remote[len("unix://"):]
        address = self.remote[len("tcp://"):].rstrip("/")
        host, _, port = address.rpartition(":")
        return f"{host.strip('[]') or 'localhost'}:{port or 2375}"

    def why_no_engine(self, error):
        """One line for an engine that does not answer through the forwarded socket."""
        socket_path = self.remote_target()
        if self.socket_state == "missing":
            return (f"host {self.name}: SSH works but no Docker engine socket is at "
                    f"{socket_path} there; install and start Docker on it (or set DOCKER_HOST "
                    f"for this user there)")
        if self.socket_state == "denied":
            return (f"host {self.name}: SSH works but its user may not use {socket_path}; add it "
                    f"to group docker there (usermod -aG docker USER) and log in again")
        if "open failed" in self.said():
            return (f"host {self.name}: SSH works but {socket_path} cannot be reached through it: "
                    f"its sshd refuses to forward (AllowStreamLocalForwarding no, or restrict / "
                    f"no-port-forwarding on your key in authorized_keys; allow it for this user), "
                    f"or no engine listens there (is dockerd running?)")
        text = str(error).strip().splitlines()
        return (f"host {self.name}: SSH works but no Docker engine answers at {socket_path} "
                f"there ({text[0][:160] if text else type(error).__name__}); is dockerd running?")

    def alive(self):
        return self.master is not None and self.master.poll() is None

    def close(self):
        """End the master connection (its forwarded socket with it) and remove the folder."""
        master, self.master = self.master, None
        if master is not None and master.poll() is None:
            master.terminate()
            try:
                master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        _OPEN.discard(self)


class TunnelledClient(docker.DockerClient):
    """A DockerClient on a forwarded socket: closing it ends its SSH connection too."""

    def __init__(self, tunnel, timeout):
        super().__init__(base_url=f"unix://{tunnel.local_socket}", timeout=timeout)
        self.tunnel = tunnel

    def close(self):
        try:
            super().close()
        finally:
            self.tunnel.close()


def connect(url, name, timeout_s):
    """A client of the engine of ssh:// `url` whose engine answers a ping, or
    BackendUnavailable in one line naming `name`."""
    tunnel = Tunnel(url, name).open()
    try:
        client = TunnelledClient(tunnel, timeout_s)  # asks the engine its API version: a ping
        client.ping()
    except Exception as error:  # noqa: BLE001 (the SDK raises several types for "no answer")
        time.sleep(0.2)  # ssh writes the channel's failure a moment after the SDK sees it
        why = tunnel.why_no_engine(error)
        tunnel.close()
        raise BackendUnavailable(why) from None
    except BaseException:
        tunnel.close()
        raise
    return client


@atexit.register
def _close_all():
    for tunnel in list(_OPEN):
        tunnel.close()
