"""The panel's background render job: how to start it, follow its progress and stop it.

Issue 12: under the `bpy` module `bpy.app.binary_path` is empty, so "start a background
Blender" had nothing to start; and a child Blender that reads factory settings syncs the
user's extension repository and deletes the extension's wheels. So the child is
`blender -b` when there is a binary and otherwise this same Python (`sys.executable`)
importing `bpy`; either way it runs with its own throw-away user-resource folder (nothing it
does can touch the installed extension) and with the parent's import path, which holds the
extension's folder and its wheel site. No `bpy` import here: the pieces are testable alone.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
JOB_SCRIPT = PACKAGE_DIR / "blender_job.py"
# cli.py's progress lines: "[k/N] 0.50 samples/s, ETA ...".
PROGRESS = re.compile(r"^\[(\d+)/(\d+)\]")


def job_command(binary_path: str, job_args: list[str]) -> list[str]:
    """Blender's own binary when there is one, else this Python running the job script (bpy module)."""
    if binary_path:
        return [binary_path, "-b", "--factory-startup", "-P", str(JOB_SCRIPT), "--", *job_args]
    return [sys.executable, str(JOB_SCRIPT), "--", *job_args]


def job_env(user_resources: Path, import_path: list[str]) -> dict[str, str]:
    """Child environment: private Blender user folder, and the parent's import path (extension + wheels)."""
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(user_resources)
    entries = [p for p in import_path if p] + [PACKAGE_DIR.parent.as_posix()]
    if env.get("PYTHONPATH"):
        entries.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    return env


@dataclass
class RenderJob:
    """One running child: its process, the lines it wrote to stderr, and where it stands."""

    process: subprocess.Popen
    user_resources: tempfile.TemporaryDirectory
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, binary_path: str, job_args: list[str], import_path: list[str]) -> "RenderJob":
        user_resources = tempfile.TemporaryDirectory(prefix="densesynth_job_")
        process = subprocess.Popen(job_command(binary_path, job_args), env=job_env(Path(user_resources.name),
                                   import_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        job = cls(process, user_resources)
        job._reader = threading.Thread(target=job._read, daemon=True)
        job._reader.start()
        return job

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def progress(self) -> tuple[int, int] | None:
        """The latest "k/N" the job printed, or None before its first sample."""
        for line in reversed(self.lines):
            if match := PROGRESS.match(line):
                return int(match.group(1)), int(match.group(2))
        return None

    def finished(self) -> bool:
        return self.process.poll() is not None

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        self.user_resources.cleanup()
        return code

    def error_line(self) -> str:
        """One line for the report area: the job's last non-progress stderr line, never a traceback."""
        for line in reversed(self.lines):
            text = line.strip()
            if text and not PROGRESS.match(text) and not text.startswith(("File ", "Traceback")):
                return text
        return f"render job exited with status {self.process.returncode}"

    def cancel(self) -> None:
        """End the child and its own children; the output folder stays resumable (cli.py resumes)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError, AttributeError):
                self.process.terminate()
        try:
            self.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.wait(30)
