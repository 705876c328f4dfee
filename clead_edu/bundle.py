"""Trained models as one archive: an instructor exports them, students import them.

    python -m clead_edu export --runs runs/notebooks --out models.zip
    python -m clead_edu import models.zip --to runs/notebooks

The archive holds every checkpoint (model.pt and its model.json) found under --runs, at
the same relative paths, and MANIFEST.json listing each file's size in bytes and SHA-256.
`import` reads the whole archive and checks every size and SHA-256, that every path is a
plain relative path inside --to and that nothing in it would overwrite a different file,
before it writes anything; any failure is a `BundleError` saying what is wrong.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import zipfile
from pathlib import Path, PurePosixPath

from .checkpoints import atomic_write

MANIFEST = "MANIFEST.json"
FORMAT = "clead_edu-models/1"
CHECKPOINT_FILES = ("model.pt", "model.json")


class BundleError(ValueError):
    """An archive that cannot be exported or imported safely; the message says why."""


def add_parsers(sub) -> None:
    """The `export` and `import` subcommands of `python -m clead_edu`."""
    e = sub.add_parser("export", help="zip every trained checkpoint under --runs, with a SHA-256 manifest")
    e.add_argument("--runs", default="runs/notebooks", help="folder searched for model.pt + model.json")
    e.add_argument("--out", required=True, help="the archive to write, e.g. models.zip")
    e.set_defaults(func=export_command)
    i = sub.add_parser("import", help="check an exported archive, then unpack it into --to")
    i.add_argument("archive", help="a .zip written by `export`")
    i.add_argument("--to", default="runs/notebooks", help="checkpoint folder the notebooks use")
    i.add_argument("--overwrite", action="store_true", help="replace files that differ")
    i.set_defaults(func=import_command)


def export_command(args) -> int:
    print(f"[clead_edu] written: {export(args.runs, args.out)}")
    return 0


def import_command(args) -> int:
    written = import_bundle(args.archive, args.to, args.overwrite)
    print(f"[clead_edu] imported {len(written)} files into {args.to} (every SHA-256 checked)")
    return 0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export(runs, out) -> Path:
    """Write `out` (a zip): every model.pt/model.json pair under `runs`, plus MANIFEST.json
    [{path, bytes, sha256}]. Raises BundleError if there is no checkpoint to export."""
    runs, out = Path(runs), Path(out)
    files = sorted(p for pt in runs.rglob("model.pt") if pt.with_suffix(".json").is_file()
                   for p in (pt, pt.with_suffix(".json")))
    if not files:
        raise BundleError(f"no checkpoint (model.pt with its model.json) under {runs}; "
                          f"run the notebooks or `python -m clead_edu run` first")
    entries = []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            data = path.read_bytes()
            name = path.relative_to(runs).as_posix()
            zf.writestr(name, data)
            entries.append({"path": name, "bytes": len(data), "sha256": _sha256(data)})
        zf.writestr(MANIFEST, json.dumps({"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                          "files": entries}, indent=1))
    tmp.replace(out)
    return out


def safe_path(name: str) -> PurePosixPath:
    """A member name as a relative path that stays inside the target folder, else BundleError."""
    path = PurePosixPath(name)
    if (not name or "\\" in name or path.is_absolute() or re.match(r"^[A-Za-z]:", name)
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise BundleError(f"unsafe path {name!r} in the archive (absolute, '..', or not a plain "
                          f"relative path); refusing to import it")
    if path.name not in CHECKPOINT_FILES:
        raise BundleError(f"{name!r} is not a checkpoint file ({', '.join(CHECKPOINT_FILES)}); refusing to import it")
    return path


def read_verified(archive) -> dict[PurePosixPath, bytes]:
    """Every file of an exported archive, after checking paths, sizes and SHA-256s against
    MANIFEST.json; nothing is written. Raises BundleError naming the first problem."""
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as err:
        raise BundleError(f"cannot open {archive} as a zip archive ({err}); export it again") from None
    with zf:
        try:
            manifest = json.loads(zf.read(MANIFEST))
            entries = {str(e["path"]): (int(e["bytes"]), str(e["sha256"])) for e in manifest["files"]}
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{archive} has no valid {MANIFEST} ({type(err).__name__}: {err}); "
                              f"it was not written by `python -m clead_edu export`") from None
        names = [n for n in zf.namelist() if n != MANIFEST]
        extra, missing = set(names) - set(entries), set(entries) - set(names)
        if extra or missing or len(names) != len(set(names)):
            raise BundleError(f"{archive} does not match its manifest: not listed {sorted(extra)}, "
                              f"missing {sorted(missing)}{', duplicate names' if len(names) != len(set(names)) else ''}")
        files = {}
        for name, (size, digest) in entries.items():
            path = safe_path(name)
            with zf.open(name) as f:
                data = f.read(size + 1)     # never more than the manifest promises
            if len(data) != size or _sha256(data) != digest:
                raise BundleError(f"{name} in {archive} does not match the SHA-256/size in {MANIFEST}: "
                                  f"the archive was changed or damaged. Nothing was imported; get it again.")
            files[path] = data
    return files


def import_bundle(archive, to, overwrite: bool = False, only: set[str] | None = None) -> list[Path]:
    """Verify the whole archive (read_verified), refuse to replace differing files unless
    `overwrite`, then write every file under `to` (or only those whose paths are in `only`;
    the ones not in the archive are skipped). Returns the paths written or already equal."""
    files, to = read_verified(archive), Path(to)
    if only is not None:
        files = {p: data for p, data in files.items() if p.as_posix() in only}
    clashes = [to / p for p, data in files.items()
               if (to / p).is_file() and (to / p).read_bytes() != data]
    if clashes and not overwrite:
        raise BundleError(f"{len(clashes)} file(s) already exist with other contents, e.g. {clashes[0]}; "
                          f"nothing was imported. Use --overwrite to replace them.")
    for path, data in files.items():
        atomic_write(to / path, lambda p, data=data: p.write_bytes(data))
    return [to / p for p in files]
