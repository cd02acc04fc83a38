"""git, run the one safe way: a throwaway bare repository, a clean environment, pinned remotes.

Every git process here starts with an environment we build (nothing inherited: no ``GIT_*``
variable, no SSH agent, no proxy, no credential helper, no system or user config), a config
file of our own in a private temporary directory (mode 0700; the file 0600) that allows only
the transports the policy allows (``protocol.allow=never`` otherwise), turns off hooks,
redirects and submodule recursion, and — when a token is to be sent — holds the one
``http.<remote url>.extraHeader`` for that remote, so the token is in neither a URL nor
argv. Remotes on the network are checked and pinned by ``common.outbound.pin_remote`` (curl's
resolve list for HTTP(S), ``HostName`` for ssh). Each run is bounded by the operation's
deadline, and a fetch by the bytes git may write; past either, its process group is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common.outbound import OutboundPolicy, OutboundRefused, pin_remote
from common.secrets import Secret

from .errors import GitFailed

logger = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class GitCredentials:
    """What git may present to a remote: an HTTP header (``Authorization: Basic …``) sent
    only to ``header_origins`` ((host, port) pairs: the forge's own), and an SSH key."""

    http_header: Secret | None = None
    header_origins: frozenset[tuple[str, int]] = frozenset()
    ssh_private_key: Secret | None = None


@dataclass(frozen=True)
class SourcePolicy:
    """Which remotes git may reach: the network policy, and whether ``file://`` (a path on
    this machine) is allowed. Both follow ``REPOSITORY_ALLOW_LOCAL`` unless a caller narrows
    them."""

    network: OutboundPolicy
    allow_local_paths: bool

    @classmethod
    def from_settings(cls) -> SourcePolicy:
        from django.conf import settings

        from common.outbound import repository_policy

        return cls(network=repository_policy(), allow_local_paths=settings.REPOSITORY_ALLOW_LOCAL)


def _stderr_reason(stderr: str, what: str) -> tuple[str, str]:
    """A plain reason and a code for a failed git command, from its stderr."""
    text = stderr.lower()
    rules = [
        (
            (
                "authentication failed",
                "could not read username",
                "could not read password",
                "terminal prompts disabled",
                "requested url returned error: 401",
                "requested url returned error: 403",
                "permission denied (publickey",
            ),
            "git_auth",
            "The remote refused the credentials, or asked for some.",
        ),
        (
            ("host key verification failed", "remote host identification has changed"),
            "git_host_key",
            "The remote's SSH host key could not be verified.",
        ),
        (
            (
                "couldn't find remote ref",
                "not our ref",
                "unable to find remote helper",
                "no such remote ref",
                "is not a valid",
                "upload-pack: not our ref",
            ),
            "git_ref_not_found",
            "The remote has no such branch, tag or commit.",
        ),
        (
            (
                "repository not found",
                "does not appear to be a git repository",
                "requested url returned error: 404",
                "not found",
            ),
            "git_not_found",
            "No repository at that address.",
        ),
        (
            ("transport '", "not allowed"),
            "git_protocol_refused",
            "That kind of remote is not allowed.",
        ),
        (
            ("[rejected]", "non-fast-forward", "fetch first", "failed to push some refs"),
            "branch_moved",
            "The branch moved on the remote meanwhile; deliver again.",
        ),
        (
            (
                "could not resolve host",
                "failed to connect",
                "connection refused",
                "connection timed out",
                "couldn't connect",
                "network is unreachable",
            ),
            "git_unreachable",
            "The remote could not be reached.",
        ),
    ]
    for needles, code, reason in rules:
        if any(needle in text for needle in needles):
            return code, reason
    return "git_failed", f"git {what} failed."


@dataclass
class GitSession:
    """A private temporary directory holding a bare repository, and git run inside it."""

    sources: SourcePolicy
    deadline: float
    timeout_seconds: float
    max_fetch_bytes: int
    credentials: GitCredentials = field(default_factory=GitCredentials)
    known_hosts: str = ""
    author: tuple[str, str] = ("aiflow", "aiflow@users.noreply.localhost")
    directory: Path = field(init=False)
    repo: Path = field(init=False)
    _config: Path = field(init=False)
    _headers_written: set[str] = field(init=False, default_factory=set)
    _pins: dict[str, list[str]] = field(init=False, default_factory=dict)
    _ssh_command: dict[str, str] = field(init=False, default_factory=dict)

    def __enter__(self) -> GitSession:
        self.directory = Path(tempfile.mkdtemp(prefix="aiflow-git-"))
        home = self.directory / "home"
        home.mkdir(mode=0o700)
        self._config = home / "gitconfig"
        self._write(self._config, self._base_config())
        self.repo = self.directory / "repo.git"
        self.run("init", "--quiet", "--bare", "--template=", str(self.repo), bare=False)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- configuration --------------------------------------------------------------------

    @staticmethod
    def _write(path: Path, text: str) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)

    def _base_config(self) -> str:
        network = self.sources.network
        http_allowed = "always" if "http" in network.schemes else "never"
        file_allowed = "always" if self.sources.allow_local_paths else "never"
        return (
            "[protocol]\n\tallow = never\n\tversion = 2\n"
            '[protocol "https"]\n\tallow = always\n'
            f'[protocol "http"]\n\tallow = {http_allowed}\n'
            '[protocol "ssh"]\n\tallow = always\n'
            f'[protocol "file"]\n\tallow = {file_allowed}\n'
            "[credential]\n\thelper =\n"
            "[http]\n\tfollowRedirects = false\n"
            "[core]\n\thooksPath = /dev/null\n\tfsmonitor = false\n\tsymlinks = false\n"
            "[transfer]\n\tunpackLimit = 1\n"
            "[fetch]\n\trecurseSubmodules = false\n\twriteCommitGraph = false\n"
            "[submodule]\n\trecurse = false\n"
            "[gc]\n\tauto = 0\n"
            "[maintenance]\n\tauto = false\n"
            "[init]\n\tdefaultBranch = main\n"
        )

    def _environment(self, remote: str | None) -> dict[str, str]:
        env = {
            "PATH": SAFE_PATH,
            "HOME": str(self._config.parent),
            "XDG_CONFIG_HOME": str(self._config.parent),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(self._config),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PROTOCOL_FROM_USER": "0",
            "LANG": "C",
            "LC_ALL": "C",
            "TZ": "UTC",
            "GIT_AUTHOR_NAME": self.author[0],
            "GIT_AUTHOR_EMAIL": self.author[1],
            "GIT_COMMITTER_NAME": self.author[0],
            "GIT_COMMITTER_EMAIL": self.author[1],
        }
        if remote is not None and remote in self._ssh_command:
            env["GIT_SSH_COMMAND"] = self._ssh_command[remote]
            env["GIT_SSH_VARIANT"] = "ssh"
        return env

    def prepare_remote(self, url: str) -> None:
        """Check ``url`` and pin git's connection to it; give it the credentials it may have.

        Raises ``OutboundRefused`` (a plain 400) for a remote the policy does not allow.
        """
        if url in self._pins:
            return
        if any(char in url for char in '"\\\n\r\t ') or url.startswith("-"):
            raise OutboundRefused("That remote address has characters git cannot take safely.")
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            if not self.sources.allow_local_paths:
                raise OutboundRefused(
                    "file:// remotes are not allowed (REPOSITORY_ALLOW_LOCAL is off)."
                )
            self._pins[url] = []
            return
        if not scheme:
            raise OutboundRefused(
                "Give the remote as a URL (https://… or ssh://…), not a path or host:path."
            )
        pinned = pin_remote(url, self.sources.network)
        self._pins[url] = pinned.git_args()
        target = pinned.target
        if scheme == "ssh":
            self._ssh_command[url] = self._ssh(pinned.ssh_options, target.port)
            return
        header = self.credentials.http_header
        if header and (target.host, target.port) in self.credentials.header_origins:
            section = f'[http "{url}"]\n\textraHeader = {header.reveal()}\n'
            with self._config.open("a") as handle:
                handle.write(section)

    def _ssh(self, pins: tuple[str, ...], port: int) -> str:
        known = self.known_hosts or str(self.directory / "known_hosts")
        strict = "yes" if self.known_hosts else "accept-new"
        options = [
            "ssh", "-F", "/dev/null",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
            "-o", "ProxyCommand=none", "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", "PermitLocalCommand=no", "-o", "ClearAllForwardings=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"StrictHostKeyChecking={strict}", "-o", "ConnectTimeout=15",
            *pins,
        ]  # fmt: skip
        key = self.credentials.ssh_private_key
        if key:
            key_file = self.directory / "ssh_key"
            text = key.reveal()
            self._write(key_file, text if text.endswith("\n") else text + "\n")
            options += ["-i", str(key_file)]
        return " ".join(shlex.quote(option) for option in options)

    # -- running git ------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        remote: str | None = None,
        input: bytes | None = None,
        watch_size: bool = False,
        bare: bool = True,
        what: str | None = None,
    ) -> bytes:
        """Run ``git <args>`` on the session's repository; its stdout, or ``GitFailed``.

        ``remote`` names the URL the command talks to (prepared with ``prepare_remote``), so
        its pins are applied; ``watch_size`` bounds the bytes the repository may grow to.
        """
        command = ["git"]
        if bare:
            command.append(f"--git-dir={self.repo}")
        if remote is not None:
            self.prepare_remote(remote)
            command += self._pins[remote]
        command += list(args)
        label = what or args[0]
        with (
            tempfile.TemporaryFile(dir=self.directory) as out,
            tempfile.TemporaryFile(dir=self.directory) as err,
        ):
            process = subprocess.Popen(  # noqa: S603 - git with arguments we built
                command,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self._environment(remote),
                cwd=self.directory,
                start_new_session=True,
            )
            if input is not None and process.stdin is not None:
                try:
                    process.stdin.write(input)
                    process.stdin.close()
                except BrokenPipeError:
                    pass
            self._wait(process, watch_size=watch_size)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read().decode("utf-8", "replace")
        if process.returncode != 0:
            code, reason = _stderr_reason(stderr, label)
            logger.info(
                "repositories.git_failed",
                extra={"command": label, "code": code, "stderr": self._redact(stderr)[-2000:]},
            )
            raise GitFailed(reason, code=code)
        return stdout

    def _wait(self, process: subprocess.Popen, *, watch_size: bool) -> None:
        while True:
            try:
                process.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            else:
                if watch_size and _disk_usage(self.repo) > self.max_fetch_bytes:
                    raise GitFailed(
                        f"The remote sent more than {self.max_fetch_bytes} bytes.",
                        code="fetch_too_large",
                    )
                return
            if time.monotonic() > self.deadline:
                self._kill(process)
                raise GitFailed(
                    f"git took longer than {self.timeout_seconds:g} seconds.", code="timeout"
                )
            if watch_size and _disk_usage(self.repo) > self.max_fetch_bytes:
                self._kill(process)
                raise GitFailed(
                    f"The remote sent more than {self.max_fetch_bytes} bytes.",
                    code="fetch_too_large",
                )

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def _redact(self, text: str) -> str:
        header = self.credentials.http_header
        if header:
            text = text.replace(header.reveal(), "[redacted]")
        return text


def _disk_usage(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total
