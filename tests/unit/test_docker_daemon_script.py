"""`make docker-stop` (docker/daemon.sh stop) when no project daemon runs: a message and exit 0.

The script runs from a copy in a temporary folder, so it never touches a daemon the developer has
started for this checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "daemon.sh"


def test_stop_without_a_daemon_says_so_and_succeeds(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    copy = tmp_path / "docker" / "daemon.sh"
    shutil.copy(SCRIPT, copy)
    for _ in range(2):  # twice: the second stop finds even less
        done = subprocess.run(["bash", str(copy), "stop"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "no project dockerd to stop" in done.stdout
