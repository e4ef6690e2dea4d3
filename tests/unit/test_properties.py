"""Tests for modelserver/properties.py: java.util.Properties.load syntax and $$ENV$$ substitution."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelserver.config import ConfigError
from modelserver.properties import PropertiesSyntaxError, parse_properties, substitute_env

# --- a writer, the inverse of the parser ------------------------------------------------------------------------------

_CONTROL_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\\": "\\\\"}


def escape_tokens(text: str, *, is_key: bool, ascii_only: bool, escape_spaces: bool) -> list[str]:
    """Escape ``text`` for a properties file, one token per character, so a line can be split between tokens."""
    tokens = []
    for position, char in enumerate(text):
        if char in _CONTROL_ESCAPES:
            tokens.append(_CONTROL_ESCAPES[char])
        elif char == " " and (is_key or escape_spaces or position == 0):
            tokens.append("\\ ")
        elif char in "=:#!":
            tokens.append("\\" + char)
        elif ascii_only and not " " <= char <= "~":
            units = char.encode("utf-16-be")
            tokens.append("".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)))
        else:
            tokens.append(char)
    return tokens


def write_properties(entries: list[tuple[str, str]], *, ascii_only: bool = True) -> str:
    """The plainest text that Properties.load reads back as ``entries``."""
    lines = []
    for key, value in entries:
        key_text = "".join(escape_tokens(key, is_key=True, ascii_only=ascii_only, escape_spaces=False))
        value_text = "".join(escape_tokens(value, is_key=False, ascii_only=ascii_only, escape_spaces=False))
        lines.append(f"{key_text}={value_text}\n")
    return "".join(lines)


def expected_dict(entries: list[tuple[str, str]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in entries:
        result[key] = value
    return result


characters = st.characters(exclude_categories=("Cs",))
entries_strategy = st.lists(st.tuples(st.text(characters, max_size=12), st.text(characters, max_size=12)), max_size=8)


# --- round trips ----------------------------------------------------------------------------------------------------


@given(entries=entries_strategy, ascii_only=st.booleans())
def test_written_entries_parse_back(entries: list[tuple[str, str]], ascii_only: bool) -> None:
    assert parse_properties(write_properties(entries, ascii_only=ascii_only)) == expected_dict(entries)


@st.composite
def formatted_file(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A file with the given entries, written with random separators, comments, blank lines, line endings and
    continuation lines; returns ``(text, expected dict)``."""
    entries = draw(entries_strategy)
    ascii_only = draw(st.booleans())
    line_ending = st.sampled_from(["\n", "\r", "\r\n"])
    padding = st.text(st.sampled_from(" \t\f"), max_size=3)
    parts: list[str] = []
    for key, value in entries:
        for _ in range(draw(st.integers(0, 2))):
            parts.append(draw(_noise_line()) + draw(line_ending))
        key_tokens = escape_tokens(key, is_key=True, ascii_only=ascii_only, escape_spaces=True)
        value_tokens = escape_tokens(value, is_key=False, ascii_only=ascii_only, escape_spaces=True)
        separators = ["=", ":", " = ", "\t:", " :\f"] + ([" ", "\t"] if key else [])
        tokens = [*key_tokens, draw(st.sampled_from(separators)), *value_tokens]
        parts.append(draw(padding) + _with_continuations(draw, tokens, line_ending, padding) + draw(line_ending))
    return "".join(parts), expected_dict(entries)


@st.composite
def _noise_line(draw: st.DrawFn) -> str:
    """A blank line or a comment; a comment ending in a backslash must not continue."""
    padding = draw(st.text(st.sampled_from(" \t\f"), max_size=3))
    kind = draw(st.sampled_from(["blank", "#", "!"]))
    if kind == "blank":
        return padding
    body = draw(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"), max_size=10))
    return padding + kind + body + draw(st.sampled_from(["", "\\", "\\\\\\"]))


def _with_continuations(
    draw: st.DrawFn, tokens: list[str], line_ending: st.SearchStrategy[str], padding: st.SearchStrategy[str]
) -> str:
    """Join tokens, sometimes breaking the line between two tokens with a backslash and an indented next line."""
    if not tokens:
        return ""
    out = [tokens[0]]
    for token in tokens[1:]:
        if not token[0].isspace() and draw(st.integers(0, 4)) == 0:
            out.append("\\" + draw(line_ending) + draw(padding))
        out.append(token)
    return "".join(out)


@given(formatted_file())
def test_formatted_files_parse_back(case: tuple[str, dict[str, str]]) -> None:
    text, expected = case
    assert parse_properties(text) == expected


@given(st.text(st.sampled_from(["a", "=", ":", " ", "\t", "\f", "\\", "\n", "\r", "#", "!", "0"]), max_size=40))
def test_parser_never_fails_without_unicode_escapes(text: str) -> None:
    result = parse_properties(text)
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in result.items())


# --- each syntax feature --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", {"a": "b"}),
        ("a:b", {"a": "b"}),
        ("a b", {"a": "b"}),
        ("a\tb", {"a": "b"}),
        ("a\fb", {"a": "b"}),
        ("a = b", {"a": "b"}),
        ("a   :   b", {"a": "b"}),
        ("a \t= \fb", {"a": "b"}),
        ("a == b", {"a": "= b"}),
        ("a =: b", {"a": ": b"}),
        ("a:=b", {"a": "=b"}),
        ("a b c", {"a": "b c"}),
        ("a=b=c:d", {"a": "b=c:d"}),
        ("a", {"a": ""}),
        ("a=", {"a": ""}),
        ("a   ", {"a": ""}),
        ("=b", {"": "b"}),
        (":b", {"": "b"}),
        ("=", {"": ""}),
        ("   a=b", {"a": "b"}),
        ("\t\fa=b", {"a": "b"}),
        ("a=b   ", {"a": "b   "}),
        ("a=  b  c  ", {"a": "b  c  "}),
    ],
)
def test_key_value_separators(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# a=b\nc=d", {"c": "d"}),
        ("! a=b\nc=d", {"c": "d"}),
        ("   # indented comment\nc=d", {"c": "d"}),
        ("\t! indented comment\nc=d", {"c": "d"}),
        ("#comment ending in a backslash \\\nc=d", {"c": "d"}),
        ("c=d # not a comment", {"c": "d # not a comment"}),
        ("c#=d", {"c#": "d"}),
        ("\n\n   \n\t\f\nc=d\n\n", {"c": "d"}),
        ("", {}),
        ("   ", {}),
        ("#only a comment", {}),
    ],
)
def test_comments_and_blank_lines(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b\\\nc", {"a": "bc"}),
        ("a=b\\\n    c", {"a": "bc"}),
        ("a=b \\\n \t\f c", {"a": "b c"}),
        ("a=b\\\r\nc", {"a": "bc"}),
        ("a=b\\\rc", {"a": "bc"}),
        ("a=b\\\\\nc=d", {"a": "b\\", "c": "d"}),
        ("a=b\\\\\\\nc", {"a": "b\\c"}),
        ("a=b\\\\\\\\\nc=d", {"a": "b\\\\", "c": "d"}),
        ("a=1\\\n2\\\n3\\\n4", {"a": "1234"}),
        ("a\\\n=b", {"a": "b"}),
        ("a\\\n b", {"ab": ""}),
        ("a \\\n b", {"a": "b"}),
        ("a=b\\\n#c", {"a": "b#c"}),
        ("a=b\\\n!c", {"a": "b!c"}),
        ("a=b\\\n\nc=d", {"a": "b", "c": "d"}),
        ("a=b\\\n   \nc=d", {"a": "b", "c": "d"}),
        ("a=b\\", {"a": "b"}),
        ("a=b\\\n", {"a": "b"}),
        ("a=b\\\r\n", {"a": "b"}),
        ("a=b\\\n   ", {"a": "b"}),
    ],
)
def test_continuation_lines(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # JDK 9+ LineReader: a line that is only a backslash collects nothing, so the next line starts afresh...
        ("\\\n#comment\na=b", {"a": "b"}),
        ("\\\n   !comment\na=b", {"a": "b"}),
        ("\\\n\na=b", {"a": "b"}),
        ("\\\n   a=b", {"a": "b"}),
        # ...but if the text ends right after it, Java reports one empty key.
        ("\\", {"": ""}),
        ("\\\n", {"": ""}),
        ("\\\r", {"": ""}),
        ("\\\r\n", {}),
        ("\\\n  ", {}),
    ],
)
def test_java_line_reader_corner_cases(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


@pytest.mark.parametrize("ending", ["\n", "\r", "\r\n"])
def test_line_endings(ending: str) -> None:
    assert parse_properties(ending.join(["a=1", "#c", "", "b=2", "c=3"])) == {"a": "1", "b": "2", "c": "3"}


def test_only_java_line_breaks_end_lines() -> None:
    text = "a=1\x0b2\x1c3\x854\u20285"
    assert parse_properties(text) == {"a": "1\x0b2\x1c3\x854\u20285"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=\\t\\n\\r\\f", {"a": "\t\n\r\f"}),
        ("a=\\\\", {"a": "\\"}),
        ("a\\=b=c", {"a=b": "c"}),
        ("a\\:b:c", {"a:b": "c"}),
        ("a\\ b c", {"a b": "c"}),
        ("\\#a=b", {"#a": "b"}),
        ("\\!a=b", {"!a": "b"}),
        ("a=\\#\\!\\=\\:", {"a": "#!=:"}),
        ("a=\\ \\ b", {"a": "  b"}),
        ("a=\\ ", {"a": " "}),
        ("a=\\b\\q\\z\\\"\\'", {"a": "bqz\"'"}),
        ("a=\\u0041\\u00e9\\u4e2d", {"a": "Aé中"}),
        ("\\u0041\\u003d=\\u0042", {"A=": "B"}),
        ("a=\\uD83D\\uDE00", {"a": "\U0001f600"}),
        ("a=\\u00E9\\u00e9", {"a": "éé"}),
        ("a=\\\\u0041", {"a": "\\u0041"}),
        ("a=\\\\\\u0041", {"a": "\\A"}),
        ("a=é中\U0001f600", {"a": "é中\U0001f600"}),
    ],
)
def test_escapes(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


@pytest.mark.parametrize("text", ["a=\\u", "a=\\u12", "a=\\u12G4", "a=\\uxyzw", "\\u004=b", "a=\\u 123"])
def test_malformed_unicode_escape_raises(text: str) -> None:
    with pytest.raises(PropertiesSyntaxError, match="Malformed"):
        parse_properties(text)


def test_malformed_unicode_escape_names_the_line() -> None:
    with pytest.raises(PropertiesSyntaxError, match="line 3"):
        parse_properties("a=1\r\n# comment\r\nb=\\u12")


def test_unicode_escape_does_not_reach_across_key_and_value() -> None:
    with pytest.raises(PropertiesSyntaxError):
        parse_properties("\\u00=41")


def test_later_duplicate_key_wins() -> None:
    assert parse_properties("a=1\nb=2\na=3\n") == {"a": "3", "b": "2"}


def test_a_realistic_torchserve_config() -> None:
    text = (
        "# TorchServe config\n"
        "inference_address=http://0.0.0.0:8080\n"
        "management_address=http://0.0.0.0:8081\n"
        "number_of_netty_threads=32\n"
        "job_queue_size=1000\n"
        "model_store=/home/model-server/model-store\n"
        'models={\\\n  "noop": {\\\n    "1.0": {"minWorkers": 1, "batchSize": 4}\\\n  }\\\n}\n'
    )
    result = parse_properties(text)
    assert result["job_queue_size"] == "1000"
    assert result["models"] == '{"noop": {"1.0": {"minWorkers": 1, "batchSize": 4}}}'


# --- $$ENV$$ substitution --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$$HOME_DIR$$", "/home/me"),
        ("$$HOME_DIR$$/store", "/home/me/store"),
        ("http://$$HOST$$:$$PORT$$", "http://10.0.0.1:8080"),
        ("no references", "no references"),
        ("$$", "$$"),
        ("$$$$", "$$$$"),
        ("price: $5", "price: $5"),
        ("$$X$$", "$$X$$"),  # TorchServe's pattern needs at least two characters in the name
        ("$$WEIRD$$", "a$1\\b"),  # the value is inserted literally
    ],
)
def test_substitute_env(value: str, expected: str) -> None:
    environ = {"HOME_DIR": "/home/me", "HOST": "10.0.0.1", "PORT": "8080", "WEIRD": "a$1\\b", "X": "x"}
    assert substitute_env(value, environ) == expected


def test_substitute_env_missing_variable_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="MISSING_VAR"):
        substitute_env("$$MISSING_VAR$$", {})


def test_substitute_env_missing_variable_names_the_key_when_given() -> None:
    with pytest.raises(ConfigError, match="MISSING_VAR.*model_store"):
        substitute_env("$$MISSING_VAR$$/x", {}, key="model_store")


def test_substitute_env_empty_value_is_fine() -> None:
    assert substitute_env("a$$EMPTY$$b", {"EMPTY": ""}) == "ab"


@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="$")))
def test_substitute_env_leaves_text_without_dollars_alone(text: str) -> None:
    assert substitute_env(text, {}) == text


# --- against the real java.util.Properties, when a JDK is installed -----------------------------------------------

_JAVA_DUMP = r"""
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;

public class Dump {
    static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) b.append(String.format("%04x", (int) c));
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        int count = Integer.parseInt(args[1]);
        try (PrintStream out = new PrintStream(new FileOutputStream(args[2]), true, "UTF-8")) {
            for (int i = 0; i < count; i++) {
                Properties p = new Properties();
                try (Reader r = Files.newBufferedReader(Paths.get(args[0], i + ".txt"), StandardCharsets.UTF_8)) {
                    p.load(r);
                    StringBuilder line = new StringBuilder("OK");
                    for (String k : p.stringPropertyNames()) {
                        line.append(' ').append(hex(k)).append(':').append(hex(p.getProperty(k)));
                    }
                    out.println(line);
                } catch (IllegalArgumentException e) {
                    out.println("ERROR");
                }
            }
        }
    }
}
"""

_NASTY_TOKENS = [
    "a", "b", "x", "é", "=", ":", " ", "  ", "\t", "\f", "\\", "\\", "\\\\", "\n", "\r", "\r\n", "#", "!",
    "\\u0041", "\\u00", "\\uZZZZ", "\\n", "\\t", "\\ud83d\\ude00", "\\\n", "\\\\\n", "\\\r\n",
]  # fmt: skip


def _java_cases() -> list[str]:
    rng = random.Random(20250317)
    cases = ["".join(rng.choice(_NASTY_TOKENS) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    return cases + ["\\", "\\\n", "\\\r\n", "\\\n#c\na=b", "a=b\\\n   ", "\\u00=41", "a=b\\\\\\\nc"]


def _from_utf16_hex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-16-be", "surrogatepass")


def _decode_java_line(line: str) -> dict[str, str] | str:
    if line == "ERROR":
        return line
    result = {}
    for pair in line.split(" ")[1:]:
        key, value = pair.split(":")
        result[_from_utf16_hex(key)] = _from_utf16_hex(value)
    return result


def _parse_or_error(text: str) -> dict[str, str] | str:
    try:
        return parse_properties(text)
    except PropertiesSyntaxError:
        return "ERROR"


@pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="needs a JDK")
def test_agrees_with_java_util_properties(tmp_path: Path) -> None:
    (tmp_path / "Dump.java").write_text(_JAVA_DUMP, encoding="utf-8")
    subprocess.run(["javac", "-d", str(tmp_path), str(tmp_path / "Dump.java")], check=True, timeout=120)
    cases = _java_cases()
    case_dir = tmp_path / "cases"
    case_dir.mkdir()
    for index, text in enumerate(cases):
        (case_dir / f"{index}.txt").write_bytes(text.encode("utf-8"))
    out = tmp_path / "out.txt"
    command = ["java", "-cp", str(tmp_path), "Dump", str(case_dir), str(len(cases)), str(out)]
    subprocess.run(command, check=True, timeout=120)
    java_results = [_decode_java_line(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(java_results) == len(cases)
    mismatches = [(text, java) for text, java in zip(cases, java_results, strict=True) if _parse_or_error(text) != java]
    assert mismatches == []
