"""``model-archiver``: packages a model the way ``torch-model-archiver`` 0.12.0 does, with the same flags.

The archives it writes (``.mar`` zip, ``.tar.gz`` with a ``model_name/`` root, or a plain directory)
load in TorchServe and in modelserver alike; see docs/archives.md.
"""

from .options import ARCHIVE_FORMATS, ARCHIVER_VERSION, ArchiveOptions, ArchiverError
from .packer import create_archive, output_path

__all__ = ["ARCHIVER_VERSION", "ARCHIVE_FORMATS", "ArchiveOptions", "ArchiverError", "create_archive", "output_path"]
