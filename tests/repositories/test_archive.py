"""Archive imports: a good tree read whole, every hostile archive refused with its reason and
nothing written anywhere (the sealed directory is the same before and after)."""

import io
import stat
import struct
import subprocess
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

from repositories.archive import import_archive
from repositories.errors import ImportRefused
from repositories.tree import ImportLimits

SMALL = ImportLimits(
    max_total_bytes=1_000_000,
    max_files=100,
    max_file_bytes=200_000,
    max_depth=1,
    max_fetch_bytes=10_000_000,
    timeout_seconds=60,
)


def zip_of(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
    buffer.seek(0)
    return buffer


def zip_link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def tar_gz_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            bundle.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def member(name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "", mode: int = 0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


def refused(sealed, archive, *, limits=None) -> ImportRefused:
    """Import ``archive`` expecting a refusal; check nothing was written anywhere."""
    before = sealed.snapshot()
    with pytest.raises(ImportRefused) as caught:
        import_archive(archive, limits=limits)
    assert sealed.snapshot() == before
    return caught.value


# --- good trees ---------------------------------------------------------------------------


def test_a_zip_is_read_whole_with_binary_files_flagged(sealed):
    archive = zip_of(
        ("app/main.py", b"print('hi')\n"),
        ("app/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00"),
        ("app/data/latin1.txt", "café".encode("latin-1")),
        ("app/", b""),
    )
    tree = import_archive(archive)
    assert tree.files == {
        "main.py": b"print('hi')\n",
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        "data/latin1.txt": "café".encode("latin-1"),
    }
    assert tree.binary == {"logo.png", "data/latin1.txt"}
    assert tree.text_files() == {"main.py": "print('hi')\n"}
    assert (tree.source, tree.commit) == ("archive", None)


def test_a_tar_gz_keeps_modes_in_tree_links_and_skips_git_metadata(sealed, tmp_path):
    archive = tar_gz_of(
        (member("r", tarfile.DIRTYPE, mode=0o755), None),
        (member("r/run.sh", mode=0o755), b"#!/bin/sh\necho hi\n"),
        (member("r/docs/readme.md"), b"# hi\n"),
        (member("r/readme", tarfile.SYMTYPE, link="docs/readme.md"), None),
        (member("r/.git/config"), b"[core]\n"),
    )
    tree = import_archive(archive)
    assert tree.files == {"run.sh": b"#!/bin/sh\necho hi\n", "docs/readme.md": b"# hi\n"}
    assert (tree.executable, tree.symlinks) == ({"run.sh"}, {"readme": "docs/readme.md"})
    assert [(s.path, s.reason) for s in tree.skipped] == [
        ("r/.git/config", "git metadata (.git) is never imported")
    ]
    out = tmp_path / "out"
    out.mkdir()
    tree.write_to(out)
    assert (out / "readme").read_text() == "# hi\n"
    assert (out / "run.sh").stat().st_mode & 0o111


def test_an_archive_that_is_neither_zip_nor_tar_gz_is_refused(sealed):
    error = refused(sealed, io.BytesIO(b"Rar!\x1a\x07\x00 not ours"))
    assert (error.code, error.detail) == (
        "bad_archive",
        "Only .zip and .tar.gz archives can be imported.",
    )


# --- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_zip_slip_is_refused_and_nothing_lands_outside(sealed, fmt):
    name = "../evil.txt"
    archive = (
        zip_of(("ok.txt", b"ok"), (name, b"pwned"))
        if fmt == "zip"
        else tar_gz_of((member("ok.txt"), b"ok"), (member(name), b"pwned"))
    )
    error = refused(sealed, archive)
    assert (error.code, error.detail) == (
        "path_outside",
        "../evil.txt: a path that leaves the tree (..).",
    )
    assert not (sealed.root / "evil.txt").exists()


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_an_absolute_path_is_refused(sealed, fmt):
    target = f"/tmp/aiflow-absolute-{uuid.uuid4().hex}"
    archive = (
        zip_of((zipfile.ZipInfo(target), b"pwned"))
        if fmt == "zip"
        else tar_gz_of((member(target), b"pwned"))
    )
    error = refused(sealed, archive)
    assert (error.code, error.detail) == ("absolute_path", f"{target}: an absolute path.")
    assert not Path(target).exists()


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_a_symbolic_link_out_of_the_tree_is_refused(sealed, fmt):
    archive = (
        zip_of(zip_link("passwd", "../../../../etc/passwd"))
        if fmt == "zip"
        else tar_gz_of((member("passwd", tarfile.SYMTYPE, link="../../../../etc/passwd"), None))
    )
    error = refused(sealed, archive)
    assert (error.code, error.detail) == (
        "link_outside",
        "passwd: a symbolic link that leaves the tree (../../../../etc/passwd).",
    )


def test_an_absolute_symbolic_link_is_refused(sealed):
    error = refused(
        sealed, tar_gz_of((member("shadow", tarfile.SYMTYPE, link="/etc/shadow"), None))
    )
    assert error.code == "link_outside"


def test_a_chain_of_links_each_inside_on_paper_but_leading_out_is_refused(sealed):
    # a/b/up -> ../.. is the tree's root; out -> a/b/up/.. would be its parent.
    archive = tar_gz_of(
        (member("a/b/file"), b"x"),
        (member("a/b/up", tarfile.SYMTYPE, link="../.."), None),
        (member("out", tarfile.SYMTYPE, link="a/b/up/.."), None),
    )
    error = refused(sealed, archive)
    assert (error.code, error.detail) == (
        "link_outside",
        "out: a symbolic link that leaves the tree (a/b/up/..).",
    )


def test_a_file_below_a_symbolic_link_is_refused(sealed):
    archive = tar_gz_of(
        (member("dir", tarfile.SYMTYPE, link="real"), None),
        (member("real/keep"), b"k"),
        (member("dir/through"), b"x"),
    )
    error = refused(sealed, archive)
    assert (error.code, error.detail) == (
        "path_through_link",
        "dir/through: below a symbolic link (dir).",
    )


def test_a_hard_link_entry_is_refused(sealed):
    archive = tar_gz_of(
        (member("a.txt"), b"a"),
        (member("b.txt", tarfile.LNKTYPE, link="/etc/passwd"), None),
    )
    error = refused(sealed, archive)
    assert (error.code, error.detail) == ("hard_link", "b.txt: a hard link.")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_and_pipes_are_refused(sealed, kind):
    error = refused(sealed, tar_gz_of((member("dev/sda", kind), None)))
    assert (error.code, error.detail) == (
        "special_file",
        "dev/sda: a device, pipe or socket, not a file.",
    )


def test_a_zip_device_entry_is_refused(sealed):
    info = zipfile.ZipInfo("null")
    info.create_system = 3
    info.external_attr = (stat.S_IFCHR | 0o666) << 16
    assert refused(sealed, zip_of((info, b""))).code == "special_file"


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_duplicate_entry_is_refused(sealed):
    archive = zip_of(("a.txt", b"one"), ("a.txt", b"two"))
    error = refused(sealed, archive)
    assert (error.code, error.detail) == ("duplicate_entry", "a.txt: appears twice.")


# --- sizes and counts ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_ten_thousand_tiny_files_are_refused(sealed, fmt):
    names = [f"f/{index}.txt" for index in range(10_000)]
    archive = (
        zip_of(*[(name, b"x") for name in names])
        if fmt == "zip"
        else tar_gz_of(*[(member(name), b"x") for name in names])
    )
    error = refused(sealed, archive)
    assert (error.code, error.detail) == ("too_many_files", "More than 5000 files.")


def test_a_sparse_one_gigabyte_file_is_refused_from_its_header(sealed, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    with (source / "big.bin").open("wb") as handle:
        handle.truncate(1 << 30)  # a hole: no block written
    (source / "a.txt").write_text("hi\n")
    archive_path = tmp_path / "sparse.tar.gz"
    subprocess.run(
        ["tar", "--sparse", "-czf", str(archive_path), "-C", str(source), "big.bin", "a.txt"],
        check=True,
    )
    assert archive_path.stat().st_size < 10_000
    with archive_path.open("rb") as archive:
        error = refused(sealed, archive)
    assert (error.code, error.detail) == (
        "file_too_large",
        "big.bin: 1073741824 bytes, larger than the 10485760 bytes a file may have.",
    )


def test_a_zip_bomb_is_refused_before_it_is_decompressed(sealed):
    archive = zip_of(("zeros.bin", bytes(200 * 1024 * 1024)))
    assert archive.getbuffer().nbytes < 1_000_000
    error = refused(sealed, archive)
    assert (error.code, error.detail) == (
        "file_too_large",
        "zeros.bin: 209715200 bytes, larger than the 10485760 bytes a file may have.",
    )


def test_many_entries_whose_sizes_add_up_past_the_total_are_refused(sealed):
    archive = zip_of(*[(f"part{index}.bin", bytes(150_000)) for index in range(8)])
    error = refused(sealed, archive, limits=SMALL)
    assert (error.code, error.detail) == ("tree_too_large", "More than 1000000 bytes in all.")


def _lie_about_size(buffer: io.BytesIO, declared: int) -> io.BytesIO:
    """Rewrite the uncompressed size a zip's only entry declares (local and central headers)."""
    data = bytearray(buffer.getvalue())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    return io.BytesIO(bytes(data))


def test_a_zip_entry_holding_more_than_it_declares_is_refused(sealed):
    archive = _lie_about_size(zip_of(("small.txt", bytes(5_000_000))), 1_000)
    error = refused(sealed, archive)
    assert (error.code, error.detail) == ("bad_archive", "small.txt: damaged in the archive.")


def test_a_gzip_bomb_stops_at_the_unpacked_bound(sealed, tmp_path):
    # One tar member whose pax header alone would unpack to 50 MB: never read in full.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as bundle:
        info = tarfile.TarInfo("a.txt")
        info.pax_headers = {"comment": "x" * (50 * 1024 * 1024)}
        info.size = 1
        bundle.addfile(info, io.BytesIO(b"a"))
    buffer.seek(0)
    error = refused(sealed, buffer, limits=SMALL)
    assert (error.code, error.detail) == (
        "tree_too_large",
        "The archive unpacks to more than 1000000 bytes.",
    )


def test_a_single_top_level_directory_is_stripped(sealed):
    tree = import_archive(zip_of(("repo-main/a.py", b"a"), ("repo-main/pkg/b.py", b"b")))
    assert sorted(tree.files) == ["a.py", "pkg/b.py"]


def test_a_zip_of_countless_directory_entries_is_refused_before_they_are_parsed(sealed):
    archive = zip_of(*[(f"d{index}/", b"") for index in range(250)])
    error = refused(sealed, archive, limits=SMALL)
    assert (error.code, error.detail) == ("too_many_files", "More than 100 files.")
