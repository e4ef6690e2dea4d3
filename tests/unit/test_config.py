"""Tests for modelserver/config.py and modelserver/devices.py: file lookup, precedence, typed values, addresses."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import time
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modelserver import devices
from modelserver.config import (
    ENV_OVERRIDES,
    KNOWN_KEYS,
    Address,
    CliOptions,
    ConfigError,
    ServerConfig,
    latest_snapshot,
    load_config,
    parse_address,
)

# No GPUs, whatever the machine has, so worker counts are predictable.
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}
NO_SNAPSHOTS = CliOptions(ncs=True)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str | None = None, *, cli: CliOptions = NO_SNAPSHOTS, **env: str) -> ServerConfig:
    """Load with ``text`` as ./config.properties in ``tmp_path`` (if given) and ``env`` on top of NO_GPU."""
    if text is not None:
        write(tmp_path / "config.properties", text)
    return load_config(cli, {**NO_GPU, **env}, str(tmp_path))


# --- defaults and the spec's key table -------------------------------------------------------------------------------


def test_defaults_without_any_file(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.config_file is None
    assert str(config.inference_address) == "http://127.0.0.1:8080"
    assert str(config.management_address) == "http://127.0.0.1:8081"
    assert str(config.metrics_address) == "http://127.0.0.1:8082"
    assert config.model_store is None
    assert config.workflow_store is None
    assert config.load_models == ()
    assert config.job_queue_size == 100
    assert config.default_response_timeout == 120
    assert config.default_startup_timeout == 120
    assert config.max_request_size == 6553500
    assert config.max_response_size == 6553500
    assert dict(config.models) == {}
    assert config.number_of_gpu == 0
    assert config.default_workers_per_model == devices.cpu_count()
    assert config.decode_input_request is True
    assert config.disable_token_authorization is False
    assert config.enable_model_api is False
    assert config.enable_envvars_config is False
    assert config.debug is False
    assert config.config_snapshots is False
    assert config.log_location == str(tmp_path / "logs")
    assert config.metrics_location == str(tmp_path / "logs")
    assert dict(config.properties) == {}
    assert config.unknown_keys == ()


def test_bare_server_config_matches_loaded_defaults_where_machine_independent(tmp_path: Path) -> None:
    loaded, bare = load(tmp_path), ServerConfig()
    for name in ("inference_address", "management_address", "metrics_address", "job_queue_size", "max_request_size"):
        assert getattr(bare, name) == getattr(loaded, name)


def test_spec_keys_are_known() -> None:
    spec_keys = {
        "inference_address", "management_address", "metrics_address", "model_store", "load_models",
        "default_workers_per_model", "job_queue_size", "number_of_netty_threads", "netty_client_threads",
        "default_response_timeout", "default_startup_timeout", "unregister_model_timeout", "max_request_size",
        "max_response_size", "enable_envvars_config", "async_logging", "models", "cors_allowed_origin",
        "cors_allowed_methods", "cors_allowed_headers", "keystore", "keystore_pass", "keystore_type",
        "private_key_file", "certificate_file", "enable_metrics_api", "metrics_mode", "metrics_config",
        "model_metrics_auto_detect", "disable_system_metrics", "system_metrics_cmd", "metric_time_interval",
        "disable_token_authorization", "token_expiration_min", "enable_model_api", "model_snapshot", "allowed_urls",
        "use_env_allowed_urls", "install_py_dep_per_model", "blacklist_env_vars", "decode_input_request",
        "limit_max_image_pixels", "default_service_handler", "service_envelope", "number_of_gpu",
        "initial_worker_port", "initial_distribution_port", "workflow_store", "ts_open_inference_protocol",
        "ts_header_key_sequence_id", "ts_header_key_sequence_start", "ts_header_key_sequence_end",
        "grpc_inference_port", "grpc_management_port", "prefer_direct_buffer", "use_native_io", "io_ratio", "debug",
        "python", "model_server_home", "plugins_path", "vmargs", "cpu_launcher_enable", "cpu_launcher_args",
        "ipex_enable", "cpp_log_config",
    }  # fmt: skip
    assert spec_keys <= KNOWN_KEYS


def test_env_override_names_follow_torchserve() -> None:
    assert ENV_OVERRIDES["TS_JOB_QUEUE_SIZE"] == "job_queue_size"
    assert ENV_OVERRIDES["TS_INFERENCE_ADDRESS"] == "inference_address"
    assert ENV_OVERRIDES["TS_TOKEN_EXPIRATION_TIME_MIN"] == "token_expiration_min"
    assert ENV_OVERRIDES["TS_HEADER_KEY_SEQUENCE_ID"] == "ts_header_key_sequence_id"
    assert "TS_ENABLE_ENVVARS_CONFIG" not in ENV_OVERRIDES
    assert "TS_OPEN_INFERENCE_PROTOCOL" not in ENV_OVERRIDES
    assert set(ENV_OVERRIDES.values()) <= KNOWN_KEYS


# --- which file is read ----------------------------------------------------------------------------------------------


def test_config_properties_in_cwd_is_read(tmp_path: Path) -> None:
    config = load(tmp_path, "job_queue_size=7\n")
    assert config.job_queue_size == 7
    assert config.config_file == str(tmp_path / "config.properties")


def test_ts_config_option_wins_over_config_properties(tmp_path: Path) -> None:
    write(tmp_path / "config.properties", "job_queue_size=1\n")
    write(tmp_path / "other.properties", "job_queue_size=2\n")
    config = load(tmp_path, cli=CliOptions(ts_config="other.properties", ncs=True))
    assert config.job_queue_size == 2
    assert config.config_file == str(tmp_path / "other.properties")


def test_ts_config_file_env_wins_over_ts_config_option(tmp_path: Path) -> None:
    write(tmp_path / "a.properties", "job_queue_size=1\n")
    write(tmp_path / "b.properties", "job_queue_size=2\n")
    cli = CliOptions(ts_config="a.properties")
    config = load(tmp_path, cli=cli, TS_CONFIG_FILE=str(tmp_path / "b.properties"))
    assert config.job_queue_size == 2
    assert config.config_file == str(tmp_path / "b.properties")


def test_ts_config_wins_over_snapshot(tmp_path: Path) -> None:
    write(tmp_path / "logs/config/20250101000000000-startup.cfg", "job_queue_size=1\n")
    write(tmp_path / "mine.properties", "job_queue_size=2\n")
    assert load(tmp_path, cli=CliOptions(ts_config="mine.properties")).job_queue_size == 2


@pytest.mark.parametrize(
    ("cli", "env", "named"),
    [
        (CliOptions(ts_config="missing.properties"), {}, "--ts-config"),
        (CliOptions(), {"TS_CONFIG_FILE": "missing.properties"}, "TS_CONFIG_FILE"),
        (CliOptions(ts_config="."), {}, "--ts-config"),
    ],
)
def test_named_config_file_must_exist(tmp_path: Path, cli: CliOptions, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(tmp_path, cli=cli, **env)


def test_empty_ts_config_file_env_counts_as_unset(tmp_path: Path) -> None:
    assert load(tmp_path, "job_queue_size=3\n", TS_CONFIG_FILE="").job_queue_size == 3


def test_newest_snapshot_is_read_before_config_properties(tmp_path: Path) -> None:
    write(tmp_path / "config.properties", "job_queue_size=1\n")
    older = write(tmp_path / "logs/config/20240101120000000-startup.cfg", "job_queue_size=2\n")
    newer = write(tmp_path / "logs/config/20240101120000001-snapshot.cfg", "job_queue_size=3\n")
    write(tmp_path / "logs/config/20991231235959999-shutdown.cfg.bak", "job_queue_size=4\n")
    (tmp_path / "logs/config/20991231235959999-dir.cfg").mkdir()
    # Names, not modification times, decide.
    os.utime(newer, (1_000_000, 1_000_000))
    os.utime(older, (2_000_000, 2_000_000))
    config = load(tmp_path, cli=CliOptions())
    assert config.job_queue_size == 3
    assert config.config_file == str(newer)
    assert config.config_snapshots is True


def test_snapshot_lookup_follows_log_location(tmp_path: Path) -> None:
    write(tmp_path / "logs/config/20240101000000000-startup.cfg", "job_queue_size=2\n")
    write(tmp_path / "elsewhere/config/20230101000000000-startup.cfg", "job_queue_size=5\n")
    config = load(tmp_path, cli=CliOptions(), LOG_LOCATION="elsewhere")
    assert config.job_queue_size == 5
    assert config.log_location == str(tmp_path / "elsewhere")


def test_ncs_skips_snapshots(tmp_path: Path) -> None:
    write(tmp_path / "logs/config/20240101000000000-startup.cfg", "job_queue_size=2\n")
    assert load(tmp_path, "job_queue_size=1\n", cli=CliOptions(ncs=True)).job_queue_size == 1
    assert load(tmp_path, cli=CliOptions(ncs=True)).job_queue_size == 1


def test_latest_snapshot_uses_modification_time_for_other_names(tmp_path: Path) -> None:
    first = write(tmp_path / "first.cfg", "")
    second = write(tmp_path / "second.cfg", "")
    stamped = write(tmp_path / "20200101000000000-startup.cfg", "")
    os.utime(first, (time.time() - 10, time.time() - 10))
    os.utime(second, (time.time() - 100, time.time() - 100))
    os.utime(stamped, (time.time(), time.time()))
    assert latest_snapshot(str(tmp_path)) == str(first)


def test_latest_snapshot_of_missing_or_empty_directory(tmp_path: Path) -> None:
    assert latest_snapshot(str(tmp_path / "missing")) is None
    assert latest_snapshot(str(tmp_path)) is None


# --- precedence: file < CLI < env (only with enable_envvars_config) --------------------------------------------------


def test_cli_beats_file(tmp_path: Path) -> None:
    (tmp_path / "file_store").mkdir()
    (tmp_path / "cli_store").mkdir()
    text = "model_store=file_store\nload_models=a.mar\ndisable_token_authorization=false\nenable_model_api=false\n"
    cli = CliOptions(
        model_store="cli_store", models=("b.mar", "c=d.mar"), disable_token_auth=True, enable_model_api=True, ncs=True
    )
    config = load(tmp_path, text, cli=cli)
    assert config.model_store == str(tmp_path / "cli_store")
    assert config.load_models == ("b.mar", "c=d.mar")
    assert config.properties["load_models"] == "b.mar,c=d.mar"
    assert config.disable_token_authorization is True
    assert config.enable_model_api is True


def test_cli_flags_that_are_off_leave_the_file_alone(tmp_path: Path) -> None:
    config = load(tmp_path, "disable_token_authorization=true\nenable_model_api=true\n")
    assert config.disable_token_authorization is True
    assert config.enable_model_api is True


def test_env_is_ignored_without_enable_envvars_config(tmp_path: Path) -> None:
    assert load(tmp_path, "job_queue_size=5\n", TS_JOB_QUEUE_SIZE="9").job_queue_size == 5
    config = load(tmp_path, "job_queue_size=5\nenable_envvars_config=false\n", TS_JOB_QUEUE_SIZE="9")
    assert config.job_queue_size == 5


def test_env_beats_file_and_cli_with_enable_envvars_config(tmp_path: Path) -> None:
    (tmp_path / "cli_store").mkdir()
    (tmp_path / "env_store").mkdir()
    text = "enable_envvars_config=TRUE\njob_queue_size=5\ninference_address=http://0.0.0.0:1\n"
    config = load(
        tmp_path,
        text,
        cli=CliOptions(model_store="cli_store", ncs=True),
        TS_JOB_QUEUE_SIZE="9",
        TS_INFERENCE_ADDRESS="https://127.0.0.2:8443",
        TS_MODEL_STORE="env_store",
        TS_TOKEN_EXPIRATION_TIME_MIN="30",
    )
    assert config.enable_envvars_config is True
    assert config.job_queue_size == 9
    assert config.inference_address == Address("https", "127.0.0.2", 8443)
    assert config.model_store == str(tmp_path / "env_store")
    assert config.properties["token_expiration_min"] == "30"


def test_env_cannot_enable_itself(tmp_path: Path) -> None:
    config = load(tmp_path, "job_queue_size=5\n", TS_ENABLE_ENVVARS_CONFIG="true", TS_JOB_QUEUE_SIZE="9")
    assert config.job_queue_size == 5
    assert config.enable_envvars_config is False


def test_allowed_urls_from_env_needs_use_env_allowed_urls(tmp_path: Path) -> None:
    env = {"TS_ALLOWED_URLS": "https://models\\.example/.*"}
    assert "allowed_urls" not in load(tmp_path, "enable_envvars_config=true\n", **env).properties
    config = load(tmp_path, "enable_envvars_config=true\nuse_env_allowed_urls=true\n", **env)
    assert config.properties["allowed_urls"] == "https://models\\.example/.*"


def test_env_values_are_not_substituted(tmp_path: Path) -> None:
    config = load(tmp_path, "enable_envvars_config=true\n", TS_DEFAULT_SERVICE_HANDLER="$$NOT_SET$$")
    assert config.properties["default_service_handler"] == "$$NOT_SET$$"


# --- $$ENV$$ in file values -------------------------------------------------------------------------------------------


def test_file_values_are_substituted_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    text = "model_store=$$STORE_ROOT$$/store\ninference_address=http://$$BIND_HOST$$:$$BIND_PORT$$\n"
    config = load(tmp_path, text, STORE_ROOT=str(tmp_path), BIND_HOST="0.0.0.0", BIND_PORT="9090")
    assert config.model_store == str(tmp_path / "store")
    assert config.inference_address == Address("http", "0.0.0.0", 9090)
    assert config.properties["inference_address"] == "http://0.0.0.0:9090"


def test_missing_substitution_variable_is_fatal_and_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NOT_DEFINED_ANYWHERE.*cors_allowed_origin"):
        load(tmp_path, "cors_allowed_origin=$$NOT_DEFINED_ANYWHERE$$\n")


def test_cli_values_are_not_substituted(tmp_path: Path) -> None:
    config = load(tmp_path, cli=CliOptions(models=("$$NOT_SET$$.mar",), ncs=True))
    assert config.load_models == ("$$NOT_SET$$.mar",)


# --- malformed values name the key -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("job_queue_size=many", "job_queue_size"),
        ("job_queue_size=0", "job_queue_size"),
        ("job_queue_size=1.5", "job_queue_size"),
        ("job_queue_size=1_000", "job_queue_size"),
        ("job_queue_size=", "job_queue_size"),
        ("default_response_timeout=-1", "default_response_timeout"),
        ("default_startup_timeout=two minutes", "default_startup_timeout"),
        ("max_request_size=-5", "max_request_size"),
        ("max_response_size=10MB", "max_response_size"),
        ("default_workers_per_model=-2", "default_workers_per_model"),
        ("number_of_gpu=-1", "number_of_gpu"),
        ("decode_input_request=yes", "decode_input_request"),
        ("disable_token_authorization=1", "disable_token_authorization"),
        ("enable_model_api=on", "enable_model_api"),
        ("enable_envvars_config=maybe", "enable_envvars_config"),
        ("debug=", "debug"),
        ("inference_address=localhost:8080", "inference_address"),
        ("management_address=ftp://host:21", "management_address"),
        ("metrics_address=http://host:99999", "metrics_address"),
        ("models={not json", "models"),
        ("models=[1, 2]", "models"),
        ('models={"m": {"1.0": 5}}', "models"),
        ('models={"m": 1}', "models"),
        ("model_store=does/not/exist", "model_store"),
    ],
)
def test_malformed_value_names_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key) as raised:
        load(tmp_path, line + "\n")
    bad_value = line.split("=", 1)[1]
    assert repr(bad_value)[1:-1][:40] in str(raised.value)


def test_model_store_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "store", "")
    with pytest.raises(ConfigError, match="model_store"):
        load(tmp_path, "model_store=store\n")


def test_malformed_unicode_escape_in_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.properties.*line 2"):
        load(tmp_path, "a=1\nb=\\u00zz\n")


def test_long_bad_value_is_shortened_in_the_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, "models={" + "x" * 5000 + "\n")
    assert len(str(raised.value)) < 600


# --- typed values ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("TRUE", True), ("False", False), (" false ", False)])
def test_booleans_ignore_case_and_padding(tmp_path: Path, text: str, expected: bool) -> None:
    assert load(tmp_path, f"enable_model_api={text}\n").enable_model_api is expected


def test_integers_allow_padding_and_sign(tmp_path: Path) -> None:
    assert load(tmp_path, "job_queue_size=+12   \n").job_queue_size == 12


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", ("all",)),
        ("ALL", ("all",)),
        (" All ", ("all",)),
        ("a.mar", ("a.mar",)),
        (" a.mar , b=https://x/b.mar ,, ", ("a.mar", "b=https://x/b.mar")),
        ("", ()),
        ("all,b.mar", ("all", "b.mar")),
    ],
)
def test_load_models(tmp_path: Path, value: str, expected: tuple[str, ...]) -> None:
    assert load(tmp_path, f"load_models={value}\n").load_models == expected


def test_cli_models_all(tmp_path: Path) -> None:
    assert load(tmp_path, cli=CliOptions(models=("ALL",), ncs=True)).load_models == ("all",)


def test_models_json_is_parsed_and_frozen(tmp_path: Path) -> None:
    text = 'models={"noop": {"1.0": {"minWorkers": 2, "batchSize": 4, "tags": [1, 2]}}}\n'
    config = load(tmp_path, text)
    settings = config.models["noop"]["1.0"]
    assert settings["minWorkers"] == 2
    assert settings["tags"] == (1, 2)
    with pytest.raises(TypeError):
        config.models["other"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        settings["minWorkers"] = 3  # type: ignore[index]


def test_model_store_is_resolved_against_cwd(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    config = load(tmp_path, "model_store=store\n")
    assert config.model_store == str(tmp_path / "store")
    assert config.workflow_store == str(tmp_path / "store")


def test_workflow_store_from_cli(tmp_path: Path) -> None:
    config = load(tmp_path, cli=CliOptions(workflow_store="wf", ncs=True))
    assert config.workflow_store == str(tmp_path / "wf")


def test_file_may_be_latin_1_or_have_a_bom(tmp_path: Path) -> None:
    (tmp_path / "config.properties").write_bytes("cors_allowed_origin=caf\xe9\n".encode("latin-1"))
    assert load(tmp_path).properties["cors_allowed_origin"] == "café"
    (tmp_path / "config.properties").write_bytes("\ufeffjob_queue_size=4\ncors_allowed_origin=café\n".encode())
    config = load(tmp_path)
    assert config.job_queue_size == 4
    assert config.properties["cors_allowed_origin"] == "café"


def test_config_is_immutable(tmp_path: Path) -> None:
    config = load(tmp_path, "job_queue_size=3\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.job_queue_size = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.properties["job_queue_size"] = "4"  # type: ignore[index]
    assert isinstance(config.load_models, tuple)
    assert isinstance(config.unknown_keys, tuple)


# --- unknown keys ----------------------------------------------------------------------------------------------------


def test_unknown_keys_are_kept_and_warned_about_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modelserver.config"):
        config = load(tmp_path, "zz_custom=1\naa_custom=2\njob_queue_size=3\n")
    assert config.unknown_keys == ("aa_custom", "zz_custom")
    assert config.properties["zz_custom"] == "1"
    assert config.job_queue_size == 3
    records = [record for record in caplog.records if record.name == "modelserver.config"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "aa_custom" in records[0].getMessage()
    assert "zz_custom" in records[0].getMessage()


def test_known_keys_are_not_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modelserver.config"):
        config = load(tmp_path, "number_of_netty_threads=4\nkeystore=k.p12\ngrpc_inference_port=7070\n")
    assert config.unknown_keys == ()
    assert not [record for record in caplog.records if record.name == "modelserver.config"]


def test_properties_holds_every_key_after_precedence(tmp_path: Path) -> None:
    text = "job_queue_size=5\ncustom.key=x\nenable_envvars_config=true\n"
    config = load(tmp_path, text, cli=CliOptions(models=("m.mar",), ncs=True), TS_JOB_QUEUE_SIZE="6")
    assert dict(config.properties) == {
        "job_queue_size": "6",
        "custom.key": "x",
        "enable_envvars_config": "true",
        "load_models": "m.mar",
    }


# --- GPUs and workers ------------------------------------------------------------------------------------------------


def test_number_of_gpu_defaults_to_detected(tmp_path: Path) -> None:
    config = load(tmp_path, CUDA_VISIBLE_DEVICES="0,1,2")
    assert config.number_of_gpu == 3
    assert config.default_workers_per_model == 3


@pytest.mark.parametrize(("configured", "expected"), [("1", 1), ("3", 3), ("8", 3), ("0", 0)])
def test_number_of_gpu_is_capped_at_detected(tmp_path: Path, configured: str, expected: int) -> None:
    config = load(tmp_path, f"number_of_gpu={configured}\n", CUDA_VISIBLE_DEVICES="0,1,2")
    assert config.number_of_gpu == expected


def test_no_gpus_means_one_worker_per_cpu(tmp_path: Path) -> None:
    config = load(tmp_path, "number_of_gpu=0\n", CUDA_VISIBLE_DEVICES="0,1")
    assert config.default_workers_per_model == devices.cpu_count()


def test_configured_workers_win(tmp_path: Path) -> None:
    assert load(tmp_path, "default_workers_per_model=5\n", CUDA_VISIBLE_DEVICES="0").default_workers_per_model == 5


def test_debug_means_one_worker(tmp_path: Path) -> None:
    config = load(tmp_path, "debug=true\ndefault_workers_per_model=5\n")
    assert config.debug is True
    assert config.default_workers_per_model == 1


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("", 0),
        ("-1", 0),
        ("NoDevFiles", 0),
        ("0", 1),
        ("0,1", 2),
        (" 0 , 1 ,", 2),
        ("GPU-8f6e2a51-aaaa,MIG-1234", 2),
        ("0,1,-1,2", 2),
        ("3,,1", 2),
    ],
)
def test_visible_gpu_count_from_cuda_visible_devices(visible: str, expected: int) -> None:
    assert devices.visible_gpu_count({"CUDA_VISIBLE_DEVICES": visible}) == expected


def fake_nvidia_smi(directory: Path, script: str) -> dict[str, str]:
    """Put an executable ``nvidia-smi`` shell script in ``directory``; return an environ whose PATH is only it."""
    path = directory / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {"PATH": str(directory)}


def test_visible_gpu_count_asks_nvidia_smi(tmp_path: Path) -> None:
    environ = fake_nvidia_smi(
        tmp_path, 'test "$1 $2" = "--query-gpu=index --format=csv,noheader" || exit 3\nprintf "0\\n1\\n2\\n\\n"\n'
    )
    assert devices.visible_gpu_count(environ) == 3


def test_visible_gpu_count_when_nvidia_smi_fails(tmp_path: Path) -> None:
    assert devices.visible_gpu_count(fake_nvidia_smi(tmp_path, 'echo "NVIDIA-SMI has failed"\nexit 9\n')) == 0


def test_visible_gpu_count_without_nvidia_smi(tmp_path: Path) -> None:
    assert devices.visible_gpu_count({"PATH": str(tmp_path)}) == 0


def test_cuda_visible_devices_wins_over_nvidia_smi(tmp_path: Path) -> None:
    environ = fake_nvidia_smi(tmp_path, 'printf "0\\n1\\n2\\n"\n')
    assert devices.visible_gpu_count({**environ, "CUDA_VISIBLE_DEVICES": "1"}) == 1


def test_cpu_count_is_the_affinity_mask() -> None:
    assert devices.cpu_count() == len(os.sched_getaffinity(0)) >= 1


# --- addresses -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("inference_address", "http://127.0.0.1:8080", Address("http", "127.0.0.1", 8080)),
        ("inference_address", "http://0.0.0.0", Address("http", "0.0.0.0", 80)),
        ("inference_address", "https://0.0.0.0", Address("https", "0.0.0.0", 443)),
        ("management_address", "http://localhost", Address("http", "localhost", 8081)),
        ("management_address", "https://localhost", Address("https", "localhost", 8444)),
        ("metrics_address", "http://example.com", Address("http", "example.com", 8082)),
        ("metrics_address", "https://example.com", Address("https", "example.com", 8445)),
        ("inference_address", "HTTPS://Host.Example:9443", Address("https", "Host.Example", 9443)),
        ("inference_address", "http://[::1]:8080", Address("http", "::1", 8080)),
        ("inference_address", "https://[::]", Address("https", "::", 443)),
        ("inference_address", "http://[fe80::1%eth0]:80", Address("http", "fe80::1%eth0", 80)),
        ("inference_address", "http://host:0", Address("http", "host", 0)),
        ("inference_address", "http://host:65535", Address("http", "host", 65535)),
        ("inference_address", "  http://host:1  ", Address("http", "host", 1)),
        ("inference_address", "unix:/tmp/inference.sock", Address("unix", "", -1, "/tmp/inference.sock")),
        ("management_address", "UNIX:/run/ts/mgmt sock", Address("unix", "", -1, "/run/ts/mgmt sock")),
    ],
)
def test_parse_address(key: str, value: str, expected: Address, tmp_path: Path) -> None:
    assert getattr(load(tmp_path, f"{key}={value}\n"), key) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "localhost:8080",
        "127.0.0.1",
        "tcp://host:80",
        "http://",
        "http://host:",
        "http://host:port",
        "http://host:65536",
        "http://host:8080/",
        "http://host:8080/path",
        "http://user@host",
        "http://::1:8080",
        "http://[::1",
        "http://[not-ipv6]:80",
        "http://[]:80",
        "http://ho st:80",
        "unix:relative.sock",
        "unix:",
    ],
)
def test_parse_address_rejects(value: str) -> None:
    with pytest.raises(ConfigError, match="inference_address"):
        parse_address("inference_address", value, 80, 443)


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (Address("http", "127.0.0.1", 8080), "http://127.0.0.1:8080"),
        (Address("https", "::1", 8443), "https://[::1]:8443"),
        (Address("unix", "", -1, "/tmp/x.sock"), "unix:/tmp/x.sock"),
    ],
)
def test_address_str(address: Address, text: str) -> None:
    assert str(address) == text


def test_address_flags() -> None:
    assert Address("https", "h", 1).is_tls and not Address("https", "h", 1).is_unix
    assert Address("unix", "", -1, "/s").is_unix and not Address("http", "h", 1).is_tls


hosts = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@given(scheme=st.sampled_from(["http", "https"]), host=hosts, port=st.integers(0, 65535))
def test_address_str_parses_back(scheme: str, host: str, port: int) -> None:
    address = Address(scheme, host, port)
    assert parse_address("inference_address", str(address), 80, 443) == address


@given(path=st.text(st.characters(exclude_categories=("Cs",))).map(lambda text: "/" + text))
def test_unix_address_str_parses_back(path: str) -> None:
    assume(path == path.strip())
    address = Address("unix", "", -1, path)
    assert parse_address("inference_address", str(address), 80, 443) == address


# --- protocols and envelopes (our keys and TorchServe's service_envelope) -------------------------------------------


def test_protocol_keys_default_to_torchserve_and_every_family(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert (config.default_protocol, config.inference_protocols, config.service_envelope) == (
        "torchserve",
        ("torchserve", "kserve", "mindspore", "angel"),
        "",
    )


def test_protocol_keys_are_read_case_and_space_insensitively(tmp_path: Path) -> None:
    config = load(tmp_path, "default_protocol = KServe\ninference_protocols = torchserve , TORCHSERVE\n")
    assert (config.default_protocol, config.inference_protocols) == ("kserve", ("torchserve",))
    assert load(tmp_path, "service_envelope= kservev2 \n").service_envelope == "kservev2"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("default_protocol=grpc\n", "default_protocol"),
        ("inference_protocols=torchserve,soap\n", "inference_protocols"),
        ("inference_protocols=,\n", "inference_protocols"),
    ],
)
def test_unknown_protocols_stop_startup_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load(tmp_path, text)


def test_protocol_keys_are_known_and_env_configurable(tmp_path: Path) -> None:
    config = load(tmp_path, "enable_envvars_config=true\n", TS_DEFAULT_PROTOCOL="angel")
    assert config.default_protocol == "angel" and not config.unknown_keys
