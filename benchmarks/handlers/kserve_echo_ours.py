"""``kserve_echo.py``'s model served by this project's ``ModelServer`` (``modelserver.kserve``) instead of KServe's:
what a KServe user does to move a script here, with the model file itself unchanged.

    python kserve_echo_ours.py --http_port 8080 --model_name echo --workers 1

The model class comes from ``kserve_echo.py`` (beside this file, so on ``sys.path``), never a copy of it. Its
``import kserve`` gets the same package as in our worker processes: the real KServe when it is installed in this
Python environment, else our shim (``workers.kserve_compat.install_kserve_shim`` adds it only then).
"""

from __future__ import annotations

from workers.kserve_compat import install_kserve_shim


def main() -> None:
    install_kserve_shim()
    from kserve_echo import EchoModel, parse_args

    from modelserver.kserve import ModelServer

    args = parse_args()
    ModelServer().start([EchoModel(args.model_name)])


if __name__ == "__main__":
    main()
