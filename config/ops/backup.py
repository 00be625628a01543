"""Backups: one tar archive holding the database, the stored PDFs and a manifest of SHA-256 sums.

- PostgreSQL: `pg_dump --format=custom` (consistent snapshot, restored with `pg_restore`).
- SQLite: sqlite3's online backup API (consistent even while Tarif writes).
- MEDIA_ROOT (invoice PDFs) under `media/`.
`manifest.json` lists every member's size and sha256; a restore verifies all of them
before touching anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
PG_DUMP_MEMBER = "database/postgresql.dump"
SQLITE_MEMBER = "database/sqlite3.db"


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupResult:
    path: Path
    files: int
    size: int


def postgres_binary(name: str) -> str:
    """pg_dump / pg_restore: TARIF_PG_BIN_DIR, else the newest installed PostgreSQL, else PATH."""
    configured = getattr(settings, "TARIF_PG_BIN_DIR", "")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    for directory in candidates:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found: install the PostgreSQL client or set TARIF_PG_BIN_DIR.")
    return found


def _pg_env_and_args(settings_dict: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    env = {**os.environ}
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    args = []
    if settings_dict.get("HOST"):
        args += ["--host", str(settings_dict["HOST"])]
    if settings_dict.get("PORT"):
        args += ["--port", str(settings_dict["PORT"])]
    if settings_dict.get("USER"):
        args += ["--username", str(settings_dict["USER"])]
    return env, args


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _dump_database(workdir: Path, alias: str) -> Path:
    conn = connections[alias]
    if conn.vendor == "postgresql":
        target = workdir / PG_DUMP_MEMBER
        target.parent.mkdir(parents=True)
        env, args = _pg_env_and_args(conn.settings_dict)
        command = [postgres_binary("pg_dump"), "--format=custom", "--no-owner", "--file", str(target), *args]
        completed = subprocess.run([*command, conn.settings_dict["NAME"]], env=env, capture_output=True, text=True)
        if completed.returncode:
            raise BackupError(f"pg_dump failed: {completed.stderr.strip()}")
        return target
    if conn.vendor == "sqlite":
        target = workdir / SQLITE_MEMBER
        target.parent.mkdir(parents=True)
        conn.ensure_connection()
        destination = sqlite3.connect(target)
        try:
            conn.connection.backup(destination)  # the online backup API: a consistent copy while others write
        finally:
            destination.close()
        return target
    raise BackupError(f"Backups of {conn.vendor} databases are not supported.")


def backup_create(
    *, output: Path, alias: str = "default", progress: Callable[[str], None] | None = None
) -> BackupResult:
    """Write a checksummed archive of the database and MEDIA_ROOT to `output` (a .tar file)."""
    output = Path(output)
    if output.exists():
        raise BackupError(f"{output} exists already; choose a new file name.")
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory(prefix="tarif-backup-") as tmp:
        workdir = Path(tmp)
        if progress:
            progress("database")
        database_file = _dump_database(workdir, alias)
        members: list[tuple[str, Path]] = [(database_file.relative_to(workdir).as_posix(), database_file)]
        if media_root.is_dir():
            for path in sorted(media_root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    members.append((f"media/{path.relative_to(media_root).as_posix()}", path))
        manifest = {
            "format": FORMAT_VERSION,
            "created_at": timezone.now().isoformat(),
            "vendor": connections[alias].vendor,
            "migrations": _applied_migrations(alias),
            "files": {},
        }
        partial = output.with_name(output.name + ".partial")
        with tarfile.open(partial, "w") as archive:
            for name, path in members:
                if progress:
                    progress(name)
                manifest["files"][name] = {"sha256": _sha256(path), "size": path.stat().st_size}
                archive.add(path, arcname=name, recursive=False)
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(timezone.now().timestamp())
            archive.addfile(info, io.BytesIO(data))
        partial.chmod(0o600)
        partial.rename(output)  # a crash never leaves a half-written archive under the final name
    return BackupResult(path=output, files=len(members), size=output.stat().st_size)


def _applied_migrations(alias: str) -> list[str]:
    recorder = MigrationRecorder(connections[alias])
    return sorted(f"{app}.{name}" for app, name in recorder.applied_migrations())


def _safe_member_name(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name == path.as_posix()


def backup_verify(*, archive_path: Path, extract_to: Path | None = None) -> dict[str, Any]:
    """Check every member against the manifest (and extract them when asked); raises BackupError."""
    try:
        archive = tarfile.open(archive_path, "r")
    except (OSError, tarfile.TarError) as error:
        raise BackupError(f"{archive_path} is not a readable backup archive: {error}") from error
    with archive:
        try:
            manifest = json.load(archive.extractfile(MANIFEST))
        except (KeyError, ValueError) as error:
            raise BackupError("The archive has no valid manifest.json.") from error
        expected = dict(manifest.get("files", {}))
        problems = []
        for member in archive.getmembers():
            if member.name == MANIFEST:
                continue
            if not member.isfile() or not _safe_member_name(member.name):
                problems.append(f"{member.name}: unexpected or unsafe member")
                continue
            wanted = expected.pop(member.name, None)
            if wanted is None:
                problems.append(f"{member.name}: not in the manifest")
                continue
            handle = archive.extractfile(member)
            digest = hashlib.sha256()
            target = None
            if extract_to is not None:
                target = extract_to / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                out = target.open("wb")
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                if target is not None:
                    out.write(chunk)
            if target is not None:
                out.close()
            if digest.hexdigest() != wanted["sha256"]:
                problems.append(f"{member.name}: checksum mismatch")
        problems += [f"{name}: listed in the manifest but missing" for name in expected]
        if problems:
            raise BackupError("The backup is damaged:\n  " + "\n  ".join(problems))
    return manifest


def database_is_empty(alias: str = "default") -> bool:
    conn = connections[alias]
    return not conn.introspection.table_names()


def _wipe_postgres(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


def backup_restore(*, archive_path: Path, alias: str = "default", force: bool = False) -> dict[str, Any]:
    """Restore database and MEDIA_ROOT from an archive, after verifying every checksum.

    Refuses a database that has tables (and a MEDIA_ROOT that has files) unless `force`.
    """
    conn = connections[alias]
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory(prefix="tarif-restore-") as tmp:
        workdir = Path(tmp)
        manifest = backup_verify(archive_path=archive_path, extract_to=workdir)
        if manifest["vendor"] != conn.vendor:
            raise BackupError(f"This is a {manifest['vendor']} backup; the target database is {conn.vendor}.")
        if not force and not database_is_empty(alias):
            raise BackupError("The target database is not empty: restore into an empty one, or pass --force.")
        if not force and media_root.is_dir() and any(p.is_file() for p in media_root.rglob("*")):
            raise BackupError(f"MEDIA_ROOT ({media_root}) holds files: restore into an empty one, or pass --force.")
        if conn.vendor == "postgresql":
            if force:
                _wipe_postgres(alias)
            conn.close()
            env, args = _pg_env_and_args(conn.settings_dict)
            command = [postgres_binary("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction", *args]
            command += ["--dbname", conn.settings_dict["NAME"], str(workdir / PG_DUMP_MEMBER)]
            completed = subprocess.run(command, env=env, capture_output=True, text=True)
            if completed.returncode:
                raise BackupError(f"pg_restore failed: {completed.stderr.strip()}")
        else:
            conn.ensure_connection()
            source = sqlite3.connect(workdir / SQLITE_MEMBER)
            try:
                source.backup(conn.connection)  # replaces the whole target database, page by page
            finally:
                source.close()
        conn.close()
        restored_media = workdir / "media"
        if restored_media.is_dir():
            for path in sorted(restored_media.rglob("*")):
                if path.is_file():
                    target = media_root / path.relative_to(restored_media)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
    connection.close()
    return manifest
