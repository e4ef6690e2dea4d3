"""``python -m workers --fd N --name W-9000-echo_1.0 --device cpu``: one backend worker process."""

from .worker_main import main

if __name__ == "__main__":
    raise SystemExit(main())
