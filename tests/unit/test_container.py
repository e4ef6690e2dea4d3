"""The image's entry point (``modelserver.container``) and the address flags it relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelserver import cli
from modelserver.cli import build_parser
from modelserver.container import DEFAULT_CONFIG, server_args


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["--start", "--ts-config", DEFAULT_CONFIG, "--foreground"]),
        (["serve"], ["--start", "--ts-config", DEFAULT_CONFIG, "--foreground"]),
        (["torchserve", "--start", "--model-store=/m"], ["--start", "--model-store=/m", "--foreground"]),
        (["modelserver", "--start", "--foreground"], ["--start", "--foreground"]),
        (["--models", "all", "--model-store", "/m"], ["--models", "all", "--model-store", "/m", "--foreground"]),
        (["torchserve", "--stop"], ["--stop"]),
        (["--version"], ["--version"]),
        (["bash", "-c", "ls"], None),
        (["model-archiver", "--help"], None),
    ],
)
def test_what_the_container_runs(argv: list[str], expected: list[str] | None) -> None:
    assert server_args(argv) == expected


def test_every_translated_start_parses() -> None:
    for argv in ([], ["torchserve", "--start", "--ncs", "--model-store=/m", "--ts-config=/c", "--disable-token-auth"]):
        args = server_args(argv)
        assert args is not None
        parsed = build_parser().parse_args(args)
        assert parsed.foreground and not parsed.stop


def test_address_flags_override_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.properties"
    config.write_text("inference_address=http://0.0.0.0:8085\nmanagement_address=http://0.0.0.0:8085\n")
    parser = build_parser()
    overridden = cli._config(parser.parse_args(["--ts-config", str(config), "--inference-address=http://0.0.0.0:8080"]))
    assert (overridden.inference_address.port, overridden.management_address.port) == (8080, 8085)
    as_written = cli._config(parser.parse_args(["--ts-config", str(config)]))
    assert (as_written.inference_address.port, as_written.management_address.port) == (8085, 8085)
