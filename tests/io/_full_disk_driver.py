"""Runs the experiment CLI on a real full disk: a 4 MiB tmpfs mounted in a private mount
namespace (``unshare -rm python _full_disk_driver.py WORK REPORT``).

Steps (each a ``python -m experiments.digits`` subprocess with the cache and the results on
the tmpfs): 1. a run that fits; then the disk is filled to the last byte; 2. a run that must
train new models (checkpoint writes fail); 3. the first run again (cache hit, the result
file cannot be replaced); then the filler is removed; 4. run 2 again. Writes what each step
printed and returned, plus the state left on the disk, to REPORT (JSON, outside the tmpfs).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def cli(disk: Path, seed: int) -> dict:
    env = {**os.environ, "JAXMU_COMPILE_CACHE": "0"}
    p = subprocess.run([sys.executable, "-m", "experiments.digits", "--epochs", "1", "--quiet",
                        "--no-mia", "--seed", str(seed), "--cache-dir", str(disk / "cache"),
                        "--out", str(disk / "out")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    return {"rc": p.returncode, "stderr": p.stderr, "stdout": p.stdout}


def state(disk: Path) -> dict:
    from jaxmu.io import latest_step

    cache = disk / "cache"
    entries = sorted(p for p in cache.iterdir() if p.is_dir()) if cache.exists() else []
    return {
        "temporaries": sorted(str(p) for p in cache.rglob(".tmp-*")) if cache.exists() else [],
        "final_steps": {e.name: latest_step(e / "final") for e in entries},
        "results": {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in sorted((disk / "out").rglob("*.json"))},
        "hidden_files": sorted(str(p) for p in (disk / "out").rglob(".*")),
    }


def main() -> None:
    work, report = Path(sys.argv[1]), Path(sys.argv[2])
    disk = work / "disk"
    disk.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    out: dict = {"fits": cli(disk, 0)}
    out["after_fit"] = state(disk)
    with open(disk / "filler", "wb", buffering=0) as f:  # fill the disk to the last byte
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                out["fill_errno"] = e.errno
    out["train_on_full_disk"] = cli(disk, 1)
    out["rerun_on_full_disk"] = cli(disk, 0)
    out["after_full"] = state(disk)
    (disk / "filler").unlink()
    out["train_after_freeing"] = cli(disk, 1)
    out["after_freeing"] = state(disk)
    out["disk"] = str(disk)
    report.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
