"""``model-archiver``: torch-model-archiver 0.12.0's flags, formats, manifest, overwrite and skipping rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from modelserver.archive import open_artifact, release
from modelserver.model_archiver import ARCHIVER_VERSION, ArchiveOptions, ArchiverError, create_archive
from modelserver.model_archiver.cli import main

HANDLER = "def handle(data, context):\n    return data\n"


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A typical model source tree; the working directory is ``tmp_path`` with ``out/`` to export to."""
    root = tmp_path / "src"
    files = {
        "handlers/h.py": HANDLER,
        "weights.pt": "w",
        "model.py": "class M: pass\n",
        "requirements.txt": "numpy\n",
        "model-config.yaml": "batchSize: 2\n",
        "extra/a.txt": "a",
        "extra/.hidden": "h",
        "extra/x.pyc": "p",
        "extra/sub/b.txt": "b",
        "extra/sub/__pycache__/c.pyc": "c",
        "extra/sub/.git/config": "g",
        "extra/__MACOSX/junk": "j",
        "extra/.venv/lib.py": "v",
        "more/e.txt": "e",
        "more/f.json": "{}",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    return root


def full_args(*extra: str) -> list[str]:
    return [
        "--model-name",
        "m1",
        "--version",
        "1.0",
        "--handler",
        "src/handlers/h.py",
        "--serialized-file",
        "src/weights.pt",
        "--model-file",
        "src/model.py",
        "--extra-files",
        "src/extra,src/more/e.txt",
        "-r",
        "src/requirements.txt",
        "-c",
        "src/model-config.yaml",
        "--export-path",
        "out",
        *extra,
    ]


EXPECTED_FILES = [
    ".hidden",
    "a.txt",
    "e.txt",
    "h.py",
    "model-config.yaml",
    "model.py",
    "requirements.txt",
    "sub/b.txt",
    "weights.pt",
    "x.pyc",
]
EXPECTED_MODEL = {
    "modelName": "m1",
    "serializedFile": "weights.pt",
    "handler": "h.py",
    "modelFile": "model.py",
    "modelVersion": "1.0",
    "requirementsFile": "requirements.txt",
    "configFile": "model-config.yaml",
}


def zip_contents(path: Path) -> tuple[list[str], dict]:
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n != "MAR-INF/MANIFEST.json"]
        return sorted(names), json.loads(zf.read("MAR-INF/MANIFEST.json"))


def test_default_format_is_a_deflated_mar_with_the_real_manifest(src: Path) -> None:
    assert main(full_args()) == 0
    mar = Path("out/m1.mar")
    names, manifest = zip_contents(mar)
    assert names == EXPECTED_FILES
    assert list(manifest) == ["createdOn", "runtime", "model", "archiverVersion"]
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", manifest["createdOn"])
    assert (manifest["runtime"], manifest["archiverVersion"]) == ("python", ARCHIVER_VERSION)
    assert list(manifest["model"].items()) == list(EXPECTED_MODEL.items())
    with zipfile.ZipFile(mar) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
        assert zf.namelist()[-1] == "MAR-INF/MANIFEST.json"
        assert zf.read("MAR-INF/MANIFEST.json").decode() == json.dumps(manifest, indent=2)


def test_zip_store_format_is_not_compressed(src: Path) -> None:
    assert main([*full_args(), "--archive-format", "zip-store"]) == 0
    with zipfile.ZipFile("out/m1.mar") as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}


def test_tgz_format_puts_everything_under_the_model_name(src: Path) -> None:
    assert main([*full_args(), "--archive-format", "tgz"]) == 0
    with tarfile.open("out/m1.tar.gz") as tf:
        members = tf.getmembers()
        assert all(m.isfile() for m in members)
        assert sorted(m.name for m in members) == sorted(
            [f"m1/{n}" for n in EXPECTED_FILES] + ["m1/MAR-INF/MANIFEST.json"]
        )
        manifest = json.loads(tf.extractfile("m1/MAR-INF/MANIFEST.json").read())  # type: ignore[union-attr]
    assert manifest["model"] == EXPECTED_MODEL


def test_no_archive_format_writes_a_model_directory(src: Path) -> None:
    assert main([*full_args(), "--archive-format", "no-archive"]) == 0
    out = Path("out/m1")
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert found == sorted([*EXPECTED_FILES, "MAR-INF/MANIFEST.json"])
    assert json.loads((out / "MAR-INF/MANIFEST.json").read_text())["model"] == EXPECTED_MODEL


@pytest.mark.parametrize(("fmt", "output"), [("default", "m1.mar"), ("tgz", "m1.tar.gz"), ("no-archive", "m1")])
def test_every_format_opens_in_the_server(src: Path, fmt: str, output: str) -> None:
    assert main([*full_args(), "--archive-format", fmt]) == 0
    artifact = open_artifact(Path("out", output))
    assert (artifact.name, artifact.version, artifact.handler) == ("m1", "1.0", "h.py")
    assert dict(artifact.yaml_config) == {"batchSize": 2}
    assert Path(artifact.model_dir, "sub", "b.txt").read_text() == "b"
    release(artifact)


def test_manifest_has_only_the_fields_given(src: Path) -> None:
    assert main(["--model-name", "small", "-v", "2", "--handler", "src/handlers/h.py", "--export-path", "out"]) == 0
    names, manifest = zip_contents(Path("out/small.mar"))
    assert names == ["h.py"]
    assert manifest["model"] == {"modelName": "small", "handler": "h.py", "modelVersion": "2"}


@pytest.mark.parametrize(
    ("handler", "manifest_handler", "copied"),
    [
        ("src/handlers/h.py:handle", "h.py:handle", ["h.py"]),
        ("src/handlers/h:handle", "h:handle", ["h.py"]),
        ("src/handlers/h", "h", ["h.py"]),
        ("image_classifier", "image_classifier", []),
    ],
)
def test_handler_forms(src: Path, handler: str, manifest_handler: str, copied: list[str]) -> None:
    assert main(["--model-name", "m", "--version", "1", "--handler", handler, "--export-path", "out"]) == 0
    names, manifest = zip_contents(Path("out/m.mar"))
    assert (names, manifest["model"]["handler"]) == (copied, manifest_handler)


def test_missing_handler_file_is_an_error(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-name", "m", "--version", "1", "--handler", "nope.py", "--export-path", "out"]) == 1
    assert "ERROR - File does not exist: nope.py" in capsys.readouterr().err
    assert os.listdir("out") == []


def test_existing_output_is_refused_without_force(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(full_args()) == 0
    before = Path("out/m1.mar").read_bytes()
    assert main(full_args()) == 1
    assert capsys.readouterr().err == (
        "ERROR - out/m1.mar already exists.\n"
        "Please specify --force/-f option to overwrite the model archive output file.\n"
        "See -h/--help for more details.\n"
    )
    assert Path("out/m1.mar").read_bytes() == before
    assert main([*full_args(), "-f"]) == 0
    assert "WARNING - Overwriting out/m1.mar ..." in capsys.readouterr().err
    assert sorted(os.listdir("out")) == ["m1.mar"]


def test_force_updates_a_no_archive_directory_in_place(src: Path) -> None:
    assert main([*full_args(), "--archive-format", "no-archive"]) == 0
    Path("out/m1/stale.txt").write_text("from before")
    assert main([*full_args(), "--archive-format", "no-archive"]) == 1
    assert main([*full_args(), "--archive-format", "no-archive", "--force"]) == 0
    assert Path("out/m1/stale.txt").exists()
    assert Path("out/m1/h.py").read_text() == HANDLER


def test_force_never_writes_through_a_link_in_the_output_directory(src: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "out" / "m1").mkdir()
    (tmp_path / "out" / "m1" / "h.py").symlink_to(victim)
    assert main([*full_args(), "--archive-format", "no-archive", "-f"]) == 0
    assert victim.read_text() == "keep me"
    assert Path("out/m1/h.py").read_text() == HANDLER


def test_invalid_model_name_is_refused_with_the_real_message(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-name", "-bad name", "--version", "1", "--handler", "src/handlers/h.py"]) == 1
    assert "Model name contains special characters." in capsys.readouterr().err


def test_export_path_must_be_a_directory(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*full_args()[:-2], "--export-path", "missing"]) == 1
    assert "Given export-path missing is not a directory." in capsys.readouterr().err


def test_export_path_defaults_to_the_working_directory(src: Path) -> None:
    assert main(["--model-name", "here", "--version", "1", "--handler", "src/handlers/h.py"]) == 0
    assert Path("here.mar").is_file()


def test_required_flags_and_choices_are_argparse_errors(src: Path) -> None:
    with pytest.raises(SystemExit) as missing:
        main(["--model-name", "m", "--handler", "h.py"])
    with pytest.raises(SystemExit) as bad_format:
        main([*full_args(), "--archive-format", "rar"])
    assert missing.value.code == bad_format.value.code == 2


def test_extra_files_globs_and_missing_files(src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model-name", "g", "--version", "1", "--handler", "src/handlers/h.py", "--export-path", "out"]
    assert main([*args, "--extra-files", "src/more/*.json, src/nothing*.bin"]) == 0
    assert zip_contents(Path("out/g.mar"))[0] == ["f.json", "h.py"]
    assert "WARNING - Given wildcard pattern did not match any file: src/nothing*.bin" in capsys.readouterr().err
    assert main([*args, "-f", "--extra-files", "src/more/absent.txt"]) == 1
    assert "ERROR - File does not exist: src/more/absent.txt" in capsys.readouterr().err


def test_later_inputs_win_a_name_clash(src: Path) -> None:
    """The real tool copies model, weights, handler, extras, requirements, config in that order."""
    clash = src / "clash"
    clash.mkdir()
    (clash / "h.py").write_text("# from extras\n")
    (clash / "requirements.txt").write_text("# from extras\n")
    assert main([*full_args(), "--extra-files", "src/clash"]) == 0
    with zipfile.ZipFile("out/m1.mar") as zf:
        assert zf.read("h.py") == b"# from extras\n"
        assert zf.read("requirements.txt") == b"numpy\n"


def test_symlinked_sources_are_followed_and_loops_do_not_hang(src: Path) -> None:
    (src / "extra" / "sub" / "loop").symlink_to(src / "extra" / "sub")
    (src / "extra" / "linked.txt").symlink_to(src / "more" / "e.txt")
    assert main(full_args()) == 0
    with zipfile.ZipFile("out/m1.mar") as zf:
        assert zf.read("linked.txt") == b"e"
        assert "sub/b.txt" in zf.namelist()
        assert not any(n.startswith("sub/loop/loop/") for n in zf.namelist())


def test_a_manifest_among_the_sources_is_replaced(src: Path) -> None:
    (src / "extra" / "MAR-INF").mkdir()
    (src / "extra" / "MAR-INF" / "MANIFEST.json").write_text("{}")
    assert main(full_args()) == 0
    with zipfile.ZipFile("out/m1.mar") as zf:
        assert zf.namelist().count("MAR-INF/MANIFEST.json") == 1
        assert json.loads(zf.read("MAR-INF/MANIFEST.json"))["model"]["modelName"] == "m1"


def test_no_partial_archive_is_left_on_failure(src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", explode)
    assert main(full_args()) == 1
    assert os.listdir("out") == []


def test_api_raises_archiver_error(src: Path) -> None:
    with pytest.raises(ArchiverError, match="already exists"):
        for _ in range(2):
            create_archive(ArchiveOptions(model_name="api", version="1", handler="src/handlers/h.py"))


def test_python_dash_m_runs_the_command(src: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelserver.model_archiver",
            "--model-name",
            "mm",
            "-v",
            "1",
            "--handler",
            "image_classifier",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert Path("mm.mar").is_file()
