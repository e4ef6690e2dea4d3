# syntax=docker/dockerfile:1
# modelserver's container image: CPU (default) or CUDA by build argument.
#
#   docker build -t modelserver:cpu .
#   docker build -t modelserver:cuda --build-arg VARIANT=cuda .
#   docker run --rm -p 8080:8080 -v "$PWD/model_store:/home/model-server/model-store:ro" modelserver:cpu
#
# The model store is mounted at /home/model-server/model-store and config.properties may be mounted over
# /home/model-server/config.properties (the image's own: inference on all interfaces, management and metrics on
# 127.0.0.1, every model of the store loaded). The server runs as the unprivileged user model-server (uid 1000)
# in the foreground as the container's main process; SIGTERM drains in-flight requests (up to 30 s).
# docs/deployment.md has the details, Kubernetes manifests and the KServe runtime.

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- torch: the variant decides which build ---------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

FROM base AS torch-cpu
# PyPI's Linux torch is the CUDA build (with gigabytes of nvidia-* wheels): the CPU wheel comes from PyTorch's CPU
# index, and the build fails if a CUDA torch or any nvidia package got in anyway.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_CPU_INDEX}" torch==2.13.0 \
 && python -c "import torch, sys; sys.exit('CUDA torch in the CPU image' if torch.version.cuda else 0)" \
 && ! pip list --format=freeze | grep -i '^nvidia'

FROM base AS torch-cuda
# PyPI's torch for Linux x86_64 bundles its CUDA libraries; the host (or the NVIDIA device plugin) brings the driver.
RUN pip install torch==2.13.0 \
 && python -c "import torch, sys; sys.exit(0 if torch.version.cuda else 'a CPU torch in the CUDA image')"

# --- the server on top of the chosen torch ------------------------------------------------------------------------
FROM torch-${VARIANT} AS build
ARG EXTRAS=vision
# a C compiler for mypyc (the hot path's compiled modules), in this stage only
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.cfg README.md /src/
COPY modelserver /src/modelserver
COPY workers /src/workers
RUN pip install "/src[${EXTRAS}]" \
 && python -m modelserver.compile --require \
 && python -c "import torch, sys; print('torch', torch.__version__)" \
 && modelserver --version

# --- runtime: only the virtual environment, no compilers, no sources, no pip cache --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="modelserver" \
      org.opencontainers.image.description="TorchServe's and KServe's APIs on one port (${VARIANT})" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 1000 model-server \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/model-server --shell /usr/sbin/nologin model-server \
 && mkdir -p /home/model-server/model-store /home/model-server/logs \
 && chown -R 1000:1000 /home/model-server
COPY --from=build /opt/venv /opt/venv
COPY --chown=1000:1000 docker/config.properties /home/model-server/config.properties
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_LOCATION=/home/model-server/logs \
    METRICS_LOCATION=/home/model-server/logs \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 1000:1000
WORKDIR /home/model-server
EXPOSE 8080 8081 8082
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "modelserver.container"]
CMD ["serve"]
