"""The GPU suite's bundles (`--bundle DIR`): after each stage, DIR/<stage>.tar.gz with what the
stage wrote, checkpoints left out, and a copy of the results JSON: a few files to copy back
from the GPU machine."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

BUNDLE_MAX = 15 * 2**20     # over this, the executed notebooks' images are left out of the bundle


def without_images(notebook: Path) -> bytes:
    """The notebook's JSON with every image output replaced by a note."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            for key in [k for k in o.get("data", {}) if k.startswith("image/")]:
                o["data"][key.replace("image/", "text/x-removed-")] = "image left out to fit 15 MiB"
                del o["data"][key]
    return json.dumps(nb).encode()


def write_tar(out: Path, src: Path, tar_path: Path, keep_images: bool) -> None:
    """tar_path: every file under src (paths relative to out) but checkpoints (.pt, .pth);
    notebooks without their images unless keep_images."""
    with tarfile.open(tar_path, "w:gz") as tar:
        for f in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.endswith((".pt", ".pth"))):
            name = str(f.relative_to(out))
            if f.suffix == ".ipynb" and not keep_images:
                data = without_images(f)
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), int(f.stat().st_mtime)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.add(f, arcname=name)


def bundle(out: Path, stage: str, dest: Path, json_path: Path) -> None:
    """dest/<stage>.tar.gz of out/<stage>/ without checkpoints, and a copy of the JSON. Over
    15 MiB, the executed notebooks' images are left out (their text outputs stay)."""
    dest.mkdir(parents=True, exist_ok=True)
    src, tar_path = out / stage, dest / f"{stage}.tar.gz"
    if src.exists():                   # the throughput stage writes only the JSON
        write_tar(out, src, tar_path, keep_images=True)
        if tar_path.stat().st_size > BUNDLE_MAX:
            print(f"[gpu_suite] {tar_path} is over 15 MiB; writing it again without the notebooks' images")
            write_tar(out, src, tar_path, keep_images=False)
    if json_path.exists():
        shutil.copy(json_path, dest / json_path.name)
