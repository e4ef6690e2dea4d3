"""Archive reading: every format opens, hostile archives are refused and never write outside their temp dir."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelserver.archive import (
    ExtractLimits,
    InvalidModel,
    ModelArtifact,
    extract_archive,
    open_artifact,
    release,
)

MANIFEST = {
    "createdOn": "01/01/2026 00:00:00",
    "runtime": "python",
    "model": {"modelName": "zipped", "handler": "h.py", "modelVersion": "3.0", "configFile": "cfg.yaml"},
    "archiverVersion": "0.12.0",
}
GOOD_FILES = {
    "MAR-INF/MANIFEST.json": json.dumps(MANIFEST).encode(),
    "h.py": b"def handle(data, context):\n    return data\n",
    "cfg.yaml": b"batchSize: 4\n",
    "sub/labels.txt": b"a\nb\n",
}

Entry = tuple[str | zipfile.ZipInfo, bytes]


@dataclass
class Sandbox:
    """A private temp root: the only place the archive reader may write, next to the targets attacks aim for."""

    root: Path
    tmp: Path
    incoming: Path

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.tmp))

    def files_outside(self, *allowed: Path) -> list[Path]:
        """Everything in the sandbox that is not under ``allowed`` (directories leading to them excepted)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if any(path.is_relative_to(a) for a in allowed) or path == self.tmp:
                    continue
                if not (path.is_dir() and any(a.is_relative_to(path) for a in allowed)):
                    found.append(path)
        return found


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    box = Sandbox(root=tmp_path, tmp=tmp_path / "tmp", incoming=tmp_path / "in")
    box.tmp.mkdir()
    box.incoming.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(box.tmp))
    return box


def write_zip(path: Path, entries: Iterable[Entry], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, b""


def pax_sparse(name: str) -> tuple[tarfile.TarInfo, bytes]:
    """GNU sparse format 1.0: the sparse map sits in the data, which tarfile would read whole."""
    data = b"1\n0\n4\n".ljust(512, b"\0") + b"data"
    info, _ = tar_file(name, data)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "4"}
    return info, data


def write_tar(path: Path, members: Iterable[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def zip_link(name: str, target: str, kind: int = stat.S_IFLNK) -> Entry:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (kind | 0o777) << 16
    return info, target.encode()


# -- good archives -------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_mar_opens_and_release_deletes_the_workdir(sandbox: Sandbox, compression: int) -> None:
    archive = write_zip(sandbox.incoming / "whatever.mar", GOOD_FILES.items(), compression)
    artifact = open_artifact(archive)
    assert (artifact.name, artifact.version, artifact.handler) == ("zipped", "3.0", "h.py")
    assert dict(artifact.yaml_config) == {"batchSize": 4}
    assert artifact.workdir is not None and artifact.model_dir == artifact.workdir
    assert stat.S_IMODE(os.stat(artifact.workdir).st_mode) == 0o700
    assert Path(artifact.model_dir, "sub", "labels.txt").read_bytes() == b"a\nb\n"
    assert sandbox.files_outside(Path(artifact.workdir), archive) == []
    release(artifact)
    release(artifact)
    assert sandbox.leftovers() == []


def test_tgz_with_model_name_root_dir_opens(sandbox: Sandbox) -> None:
    members = [tar_file(f"zipped/{name}", data) for name, data in GOOD_FILES.items()]
    archive = write_tar(sandbox.incoming / "t.tar.gz", members)
    artifact = open_artifact(archive)
    assert artifact.name == "zipped"
    assert artifact.model_dir == str(Path(artifact.workdir or "", "zipped"))
    assert Path(artifact.model_dir, "h.py").is_file()
    release(artifact)
    assert sandbox.leftovers() == []


def test_format_is_chosen_by_content_not_suffix(sandbox: Sandbox) -> None:
    zipped = write_zip(sandbox.incoming / "really-a-zip.tar.gz", GOOD_FILES.items())
    tarred = write_tar(sandbox.incoming / "really-a-tgz.mar", [tar_file(n, d) for n, d in GOOD_FILES.items()])
    plain = write_tar(sandbox.incoming / "plain.model", [tar_file(n, d) for n, d in GOOD_FILES.items()], "w")
    for archive in (zipped, tarred, plain):
        artifact = open_artifact(archive)
        assert artifact.handler == "h.py"
        release(artifact)
    assert sandbox.leftovers() == []


def test_name_precedence_explicit_then_manifest_then_stem(sandbox: Sandbox) -> None:
    with_name = write_zip(sandbox.incoming / "a.mar", GOOD_FILES.items())
    files = {**GOOD_FILES, "MAR-INF/MANIFEST.json": json.dumps({"runtime": "python", "model": {"handler": "h.py"}})}
    without_name = write_zip(sandbox.incoming / "my model-v2.mar", files.items())
    for archive, name, expected in ((with_name, "given", "given"), (with_name, None, "zipped")):
        artifact = open_artifact(archive, name)
        assert artifact.name == expected
        release(artifact)
    artifact = open_artifact(without_name)
    assert (artifact.name, artifact.version) == ("my_model_v2", "1.0")
    release(artifact)


def test_archive_without_manifest_needs_a_default_handler(sandbox: Sandbox) -> None:
    archive = write_zip(sandbox.incoming / "bare.mar", [("model.py", b"x = 1\n")])
    with pytest.raises(InvalidModel, match="default_service_handler"):
        open_artifact(archive)
    assert sandbox.leftovers() == []
    artifact = open_artifact(archive, default_handler="base_handler")
    assert (artifact.name, artifact.handler, artifact.version) == ("bare", "base_handler", "1.0")
    release(artifact)


def test_plain_directory_is_served_in_place_and_never_deleted(tmp_path: Path) -> None:
    model = tmp_path / "store" / "m"
    (model / "MAR-INF").mkdir(parents=True)
    (model / "MAR-INF" / "MANIFEST.json").write_text(json.dumps({"runtime": "python", "model": {"handler": "h.py"}}))
    artifact = open_artifact(model)
    assert (artifact.model_dir, artifact.workdir, artifact.name) == (str(model), None, "m")
    release(artifact)
    assert model.is_dir()


def test_directory_holding_one_model_dir_is_stepped_into(tmp_path: Path) -> None:
    """A tgz unpacked by someone else (SageMaker) leaves ``store/x/model_name/MAR-INF``."""
    inner = tmp_path / "x" / "inner"
    (inner / "MAR-INF").mkdir(parents=True)
    (inner / "MAR-INF" / "MANIFEST.json").write_text(json.dumps({"runtime": "python", "model": {"handler": "h.py"}}))
    artifact = open_artifact(tmp_path / "x")
    assert artifact.model_dir == str(inner)


def test_release_refuses_directories_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    release(ModelArtifact("m", "1.0", str(precious), "h.py", {}, {}, workdir=str(precious)))
    assert precious.is_dir()


def test_missing_and_unknown_files_are_invalid(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidModel, match="Model not found"):
        open_artifact(sandbox.incoming / "nope.mar")
    junk = sandbox.incoming / "junk.mar"
    junk.write_bytes(b"this is not an archive" * 50)
    with pytest.raises(InvalidModel, match="not a zip"):
        open_artifact(junk)
    truncated = sandbox.incoming / "cut.tar.gz"
    whole = write_tar(sandbox.incoming / "whole.tar.gz", [tar_file("h.py", os.urandom(50_000))]).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidModel, match="cut.tar.gz"):
        open_artifact(truncated, default_handler="h.py")
    assert sandbox.leftovers() == []


# -- hostile archives ----------------------------------------------------------------------------


def assert_refused(box: Sandbox, archive: Path, match: str, limits: ExtractLimits | None = None) -> None:
    """Refused with a clear message, the temp dir gone, and nothing written anywhere else."""
    with pytest.raises(InvalidModel, match=match) as info:
        open_artifact(archive, default_handler="h.py", limits=limits or ExtractLimits())
    assert archive.name in info.value.message
    assert box.leftovers() == []
    assert box.files_outside(box.incoming) == []


ZIP_ATTACKS = {
    "parent": ([("../evil", b"x")], "outside"),
    "deep-parent": ([("a/../../evil", b"x")], "outside"),
    "backslash-parent": ([("..\\evil", b"x")], "outside"),
    "absolute": ([("/ABSOLUTE/evil", b"x")], "absolute"),
    "drive": ([("C:\\evil", b"x")], "absolute"),
    "drive-slash": ([("c:/evil", b"x")], "absolute"),
    "symlink": ([zip_link("link", "../../evil")], "symbolic link"),
    "symlink-then-write": ([zip_link("link", ".."), ("link/evil", b"x")], "symbolic link"),
    "device": ([zip_link("dev", "", stat.S_IFCHR)], "device"),
    "fifo": ([zip_link("fifo", "", stat.S_IFIFO)], "fifo"),
    "duplicate": ([("h.py", b"a"), ("h.py", b"b")], "duplicate"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(ZIP_ATTACKS))
def test_hostile_zip_is_refused(sandbox: Sandbox, case: str) -> None:
    entries, match = ZIP_ATTACKS[case]
    archive = write_zip(sandbox.incoming / f"{case}.mar", entries)
    assert_refused(sandbox, archive, match)
    assert not (sandbox.root / "evil").exists()
    assert not (sandbox.tmp.parent / "evil").exists()


TAR_ATTACKS = {
    "parent": ([tar_file("m/../../evil", b"x")], "outside"),
    "absolute": ([tar_file("/ABSOLUTE/evil", b"x")], "absolute"),
    "symlink": ([tar_special("m/link", tarfile.SYMTYPE, "../../evil")], "symbolic link"),
    "symlink-then-write": (
        [tar_special("link", tarfile.SYMTYPE, ".."), tar_file("link/evil", b"x")],
        "symbolic link",
    ),
    "hardlink": ([tar_file("m/a", b"x"), tar_special("m/b", tarfile.LNKTYPE, "/etc/passwd")], "hard link"),
    "chr-device": ([tar_special("m/tty", tarfile.CHRTYPE)], "device"),
    "blk-device": ([tar_special("m/sda", tarfile.BLKTYPE)], "device"),
    "fifo": ([tar_special("m/fifo", tarfile.FIFOTYPE)], "fifo"),
    "gnu-sparse": ([tar_special("m/sparse", tarfile.GNUTYPE_SPARSE)], "sparse"),
    "pax-sparse": ([pax_sparse("m/sparse")], "sparse"),
}


@pytest.mark.parametrize("case", sorted(TAR_ATTACKS))
def test_hostile_tar_is_refused(sandbox: Sandbox, case: str) -> None:
    members, match = TAR_ATTACKS[case]
    archive = write_tar(sandbox.incoming / f"{case}.tar.gz", members)
    assert_refused(sandbox, archive, match)
    assert not (sandbox.root / "evil").exists()


def bomb_entries(size: int) -> list[Entry]:
    return [("h.py", b"ok"), ("weights.bin", bytes(size))]


def test_zip_bomb_over_the_total_cap_is_refused(sandbox: Sandbox) -> None:
    archive = write_zip(sandbox.incoming / "bomb.mar", bomb_entries(8 << 20))
    assert archive.stat().st_size < 64 << 10
    assert_refused(sandbox, archive, "uncompressed size", ExtractLimits(max_total_bytes=2 << 20))


def test_zip_entry_over_the_ratio_cap_is_refused(sandbox: Sandbox) -> None:
    archive = write_zip(sandbox.incoming / "ratio.mar", bomb_entries(4 << 20))
    assert_refused(sandbox, archive, "compression ratio", ExtractLimits(max_ratio=50, ratio_floor=256 << 10))


def test_small_highly_compressible_entries_are_fine(sandbox: Sandbox) -> None:
    archive = write_zip(sandbox.incoming / "zeros.mar", bomb_entries(100_000))
    artifact = open_artifact(archive, default_handler="h.py", limits=ExtractLimits(max_ratio=5))
    release(artifact)


def test_tgz_bomb_is_refused_by_total_and_by_ratio(sandbox: Sandbox) -> None:
    archive = write_tar(sandbox.incoming / "bomb.tar.gz", [tar_file(n, d) for n, d in bomb_entries(8 << 20)])
    assert_refused(sandbox, archive, "uncompressed size", ExtractLimits(max_total_bytes=2 << 20))
    assert_refused(sandbox, archive, "compression ratio", ExtractLimits(max_ratio=50, ratio_floor=256 << 10))


def test_too_many_entries_are_refused(sandbox: Sandbox) -> None:
    entries = [(f"f{i}.txt", b"x") for i in range(30)]
    limits = ExtractLimits(max_entries=10)
    assert_refused(sandbox, write_zip(sandbox.incoming / "many.mar", entries), "entries", limits)
    tarred = write_tar(sandbox.incoming / "many.tar.gz", [tar_file(n, d) for n, d in entries])
    assert_refused(sandbox, tarred, "entries", limits)


def test_huge_tar_metadata_header_is_refused(sandbox: Sandbox) -> None:
    archive = write_tar(sandbox.incoming / "pax.tar.gz", [tar_file("a" * (5 << 20), b"x")])
    assert_refused(sandbox, archive, "metadata")


def test_extract_archive_leaves_cleanup_to_the_caller(sandbox: Sandbox) -> None:
    archive = write_zip(sandbox.incoming / "half.mar", [("ok.txt", b"x"), ("../evil", b"x")])
    dest = sandbox.tmp / "dest"
    dest.mkdir()
    with pytest.raises(InvalidModel, match="outside"):
        extract_archive(archive, dest)
    assert os.listdir(dest) == ["ok.txt"]


# -- arbitrary names -----------------------------------------------------------------------------

COMPONENTS = st.one_of(
    st.sampled_from(["..", ".", "", "a", "MAR-INF", "C:", "c:\\", "..\\..", " ..", "...", "\\", "é"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6),
)
NAMES = st.lists(COMPONENTS, min_size=1, max_size=5).map("/".join) | st.builds(lambda s: "/" + s, COMPONENTS)


def _scratch() -> Iterator[Sandbox]:
    """hypothesis cannot share pytest's function fixtures between examples: a fresh sandbox each time."""
    with tempfile.TemporaryDirectory() as base:
        box = Sandbox(root=Path(base), tmp=Path(base, "tmp"), incoming=Path(base, "in"))
        box.tmp.mkdir()
        box.incoming.mkdir()
        saved, tempfile.tempdir = tempfile.tempdir, str(box.tmp)
        try:
            yield box
        finally:
            tempfile.tempdir = saved


def _check_arbitrary_name(archive_for: Callable[[Path, str], Path], name: str) -> None:
    for box in _scratch():
        archive = archive_for(box.incoming, name)
        try:
            artifact = open_artifact(archive, default_handler="h.py")
        except InvalidModel:
            assert box.leftovers() == [] and box.files_outside(archive) == []
            continue
        assert artifact.workdir is not None
        assert box.files_outside(archive, Path(artifact.workdir)) == []
        release(artifact)
        assert box.leftovers() == []


@settings(max_examples=150, deadline=None)
@given(name=NAMES)
def test_arbitrary_zip_names_stay_inside_or_are_refused(name: str) -> None:
    _check_arbitrary_name(lambda d, n: write_zip(d / "x.mar", [(zipfile.ZipInfo(n), b"data")]), name)


@settings(max_examples=150, deadline=None)
@given(name=NAMES)
def test_arbitrary_tar_names_stay_inside_or_are_refused(name: str) -> None:
    _check_arbitrary_name(lambda d, n: write_tar(d / "x.tar.gz", [tar_file(n, b"data")]), name)
