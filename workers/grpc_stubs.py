"""Message classes for the gRPC APIs, generated from the ``.proto`` files in ``workers/protos`` by grpcio-tools.

The frontend's gRPC services use them, and so does KServe's API in worker processes (``InferRequest.to_grpc``...,
the shim's ``kserve.protocol.grpc`` modules); they need the ``grpc`` extra (protobuf and grpcio-tools), and
:func:`load` raises an ``ImportError`` naming it when they are missing.

No generated code is kept in the repository: on first use, ``grpc_tools.protoc`` compiles a ``.proto`` into a
descriptor set, cached under ``$MODELSERVER_CACHE`` (else ``~/.cache/modelserver``) by the file's hash and the
grpcio-tools version (with the files it imports: protobuf's well-known types from grpcio-tools, ``google/rpc``
from ``workers/protos``), and the messages are built from it by protobuf's message factory.

They live in a descriptor pool of their own, not protobuf's default one: KServe's and Triton's generated modules
define the same ``inference.*`` names in the default pool, and a process (a KServe script, a test) may import
those too; two definitions of a name in one pool is an error at import.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTOS = Path(__file__).parent / "protos"


MISSING = "gRPC needs grpcio, grpcio-tools and protobuf: pip install 'modelserver[grpc]'"


class StubError(RuntimeError):
    """grpcio-tools could not compile a ``.proto``."""


@dataclass(frozen=True)
class ProtoModule:
    """One compiled ``.proto``: its messages by name and its services' methods."""

    package: str
    messages: dict[str, Any]
    services: dict[str, list[tuple[str, Any, Any, bool, bool]]]
    """Service name -> [(method, request class, response class, client streams, server streams)]."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self.messages[name]
        except KeyError:
            raise AttributeError(name) from None


def cache_dir() -> Path:
    root = os.environ.get("MODELSERVER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "modelserver")
    return Path(root) / "grpc"


def compile_descriptor_set(proto: Path) -> bytes:
    """The serialized ``FileDescriptorSet`` of ``proto``, from the cache or compiled by grpcio-tools now."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as err:
        raise ImportError(MISSING) from err
    digest = hashlib.sha256(_tools_version().encode())
    for path in sorted(PROTOS.rglob("*.proto")):  # the file and whatever it may import
        digest.update(path.relative_to(PROTOS).as_posix().encode() + b"\0" + path.read_bytes())
    key = digest.hexdigest()[:16]
    cached = cache_dir() / f"{proto.stem}-{key}.pb"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "set.pb"
        well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto, shipped with the tools
        command = ["protoc", f"-I{PROTOS}", f"-I{well_known}", "--include_imports", f"--descriptor_set_out={out}"]
        code = protoc.main([*command, str(proto)])
        if code != 0 or not out.exists():
            raise StubError(f"grpcio-tools could not compile {proto} (protoc exit status {code})")
        data = out.read_bytes()
    try:  # a read-only home is no reason to fail: the next start compiles again
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(cached)
    except OSError:
        pass
    return data


def _tools_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grpcio-tools")
    except PackageNotFoundError:
        return ""


@functools.cache
def load(name: str) -> ProtoModule:
    """The messages and services of ``workers/protos/<name>.proto``; ``ImportError`` without the ``grpc`` extra."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError as err:
        raise ImportError(MISSING) from err

    files = descriptor_pb2.FileDescriptorSet.FromString(compile_descriptor_set(PROTOS / f"{name}.proto"))
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    descriptor = pool.FindFileByName(files.file[-1].name)
    messages: dict[str, Any] = {}

    def collect(message: Any, prefix: str) -> None:
        cls = message_factory.GetMessageClass(message)
        messages[prefix + message.name] = cls
        for nested in message.nested_types:
            if not nested.GetOptions().map_entry:
                collect(nested, f"{prefix}{message.name}.")

    for message in descriptor.message_types_by_name.values():
        collect(message, "")
    services = {}
    for service in descriptor.services_by_name.values():
        services[service.full_name] = [
            (
                method.name,
                message_factory.GetMessageClass(method.input_type),
                message_factory.GetMessageClass(method.output_type),
                method.client_streaming,
                method.server_streaming,
            )
            for method in service.methods
        ]
    return ProtoModule(descriptor.package, messages, services)
