"""Import of an uploaded ``.zip`` or ``.tar.gz``, every entry checked before it is read.

Nothing is unpacked to disk: entries are read into an ``ImportedTree`` in memory, within the
limits. A zip's central directory is checked whole (paths, kinds, declared sizes, counts)
before any entry is decompressed, and each entry is then read no further than it declared
(a lying header ends in a CRC error, refused). A tar.gz is streamed: the gzip layer is
counted, so neither a gzip bomb nor an oversized tar header (a pax record of a gigabyte) can
make the reader hold more than the limits allow, and each member is checked from its header
before its data is read.
"""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import zipfile
import zlib
from typing import BinaryIO

from .errors import ImportRefused
from .tree import ImportedTree, ImportLimits, TreeBuilder, kind_of_mode

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 64 * 1024
# Tar headers, padding and pax records on top of the file data a tar may decompress to.
TAR_OVERHEAD_PER_ENTRY = 4096


def import_archive(
    archive: BinaryIO,
    *,
    limits: ImportLimits | None = None,
    strip_single_root: bool = True,
) -> ImportedTree:
    """Read ``archive`` (a seekable binary file: zip or gzip-compressed tar) into a tree.

    With ``strip_single_root``, a tree whose entries all sit in one top-level directory (as a
    forge's "download ZIP" makes them) loses that directory. Raises ``ImportRefused`` with the
    rule and the entry that broke it.
    """
    limits = limits or ImportLimits.from_settings()
    size = archive.seek(0, io.SEEK_END)
    archive.seek(0)
    if size > limits.max_total_bytes:
        raise ImportRefused(
            f"The archive is larger than {limits.max_total_bytes} bytes.", code="tree_too_large"
        )
    head = archive.read(4)
    archive.seek(0)
    if head.startswith(GZIP_MAGIC):
        tree = _import_tar_gz(archive, limits)
    elif head in ZIP_MAGIC:
        tree = _import_zip(archive, limits, size)
    else:
        raise ImportRefused("Only .zip and .tar.gz archives can be imported.", code="bad_archive")
    return _strip_root(tree) if strip_single_root else tree


# --- zip ----------------------------------------------------------------------------------


def _zip_entry_count(archive: BinaryIO, size: int) -> int:
    """Entries the zip's end record announces, read before ``zipfile`` parses them all."""
    tail_size = min(size, 65535 + 22)
    archive.seek(size - tail_size)
    tail = archive.read(tail_size)
    archive.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise ImportRefused("The zip archive is damaged (no end record).", code="bad_archive")
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if entries == 0xFFFF and at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":
        offset = struct.unpack("<Q", tail[at - 12 : at - 4])[0]
        archive.seek(offset)
        record = archive.read(56)
        archive.seek(0)
        if record[:4] != b"PK\x06\x06":
            raise ImportRefused("The zip archive is damaged (zip64 record).", code="bad_archive")
        entries = struct.unpack("<Q", record[32:40])[0]
    return entries


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_IFMT(mode):  # made on Unix: the mode says
        return kind_of_mode(mode)
    return "dir" if info.is_dir() else "file"


def _import_zip(archive: BinaryIO, limits: ImportLimits, size: int) -> ImportedTree:
    builder = TreeBuilder(limits, source="archive")
    # Files plus as many directories: more entries than that is refused before zipfile
    # builds an object for each one.
    if _zip_entry_count(archive, size) > 2 * limits.max_files:
        raise ImportRefused(f"More than {limits.max_files} files.", code="too_many_files")
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ImportRefused("The zip archive is damaged.", code="bad_archive") from exc
    with bundle:
        admitted: list[tuple[zipfile.ZipInfo, str, str]] = []
        for info in bundle.infolist():
            if info.flag_bits & 0x1:
                raise ImportRefused(f"{info.filename}: an encrypted entry.", code="bad_archive")
            kind = _zip_kind(info)
            path = builder.admit(
                info.filename, kind=kind, size=info.file_size if kind == "file" else 0
            )
            if path is not None:
                admitted.append((info, path, kind))
        for info, path, kind in admitted:
            data = _read_zip_entry(bundle, info, path, limits, builder)
            if kind == "symlink":
                builder.add_symlink(path, data.decode("utf-8", "replace"))
            else:
                mode = info.external_attr >> 16 if info.create_system == 3 else 0
                builder.add_file(path, data, executable=bool(mode & 0o111))
    return builder.finish()


def _read_zip_entry(
    bundle: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    path: str,
    limits: ImportLimits,
    builder: TreeBuilder,
) -> bytes:
    bound = min(info.file_size, limits.max_file_bytes)
    chunks: list[bytes] = []
    total = 0
    try:
        with bundle.open(info) as entry:
            while chunk := entry.read(READ_CHUNK):
                total += len(chunk)
                if total > bound:
                    raise ImportRefused(
                        f"{path}: holds more than it declares.", code="file_too_large"
                    )
                chunks.append(chunk)
                builder.check_time()
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ImportRefused(f"{path}: damaged in the archive.", code="bad_archive") from exc
    return b"".join(chunks)


# --- tar.gz -------------------------------------------------------------------------------


class _CountedReader(io.RawIOBase):
    """Reads a stream, refusing once more than ``bound`` bytes came out of it."""

    def __init__(self, inner: gzip.GzipFile, bound: int, builder: TreeBuilder):
        self.inner = inner
        self.bound = bound
        self.builder = builder
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), READ_CHUNK)
        try:
            data = self.inner.read(want)
        except (OSError, EOFError, zlib.error) as exc:
            raise ImportRefused("The .tar.gz archive is damaged.", code="bad_archive") from exc
        self.count += len(data)
        if self.count > self.bound:
            raise ImportRefused(
                f"The archive unpacks to more than {self.builder.limits.max_total_bytes} bytes.",
                code="tree_too_large",
            )
        self.builder.check_time()
        buffer[: len(data)] = data
        return len(data)


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "device"


def _import_tar_gz(archive: BinaryIO, limits: ImportLimits) -> ImportedTree:
    builder = TreeBuilder(limits, source="archive")
    bound = limits.max_total_bytes + (limits.max_files + 16) * TAR_OVERHEAD_PER_ENTRY
    counted = _CountedReader(gzip.GzipFile(fileobj=archive, mode="rb"), bound, builder)
    stream = io.BufferedReader(counted, buffer_size=READ_CHUNK)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as bundle:
            for member in bundle:
                kind = _tar_kind(member)
                path = builder.admit(
                    member.name, kind=kind, size=member.size if kind == "file" else 0
                )
                if path is None:
                    continue
                if kind == "symlink":
                    builder.add_symlink(path, member.linkname)
                    continue
                source = bundle.extractfile(member)
                data = source.read(limits.max_file_bytes + 1) if source else b""
                builder.add_file(path, data, executable=bool(member.mode & 0o111))
    except tarfile.TarError as exc:
        raise ImportRefused("The .tar.gz archive is damaged.", code="bad_archive") from exc
    return builder.finish()


# --- after ---------------------------------------------------------------------------------


def _strip_root(tree: ImportedTree) -> ImportedTree:
    paths = list(tree.files) + list(tree.symlinks)
    roots = {path.split("/", 1)[0] for path in paths}
    if len(roots) != 1 or any("/" not in path for path in paths):
        return tree
    cut = len(next(iter(roots))) + 1

    def strip(path: str) -> str:
        return path[cut:]

    tree.files = {strip(path): data for path, data in tree.files.items()}
    tree.binary = {strip(path) for path in tree.binary}
    tree.executable = {strip(path) for path in tree.executable}
    tree.symlinks = {strip(path): target for path, target in tree.symlinks.items()}
    return tree
