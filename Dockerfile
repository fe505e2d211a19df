# GPU image for avprep + avmodels: CUDA runtime, Debian's ffmpeg, the package.
#   docker build -t avprep .
#   docker run --gpus all -v $PWD/data:/data avprep avprep doctor
#   docker run --gpus all --ipc=host -v $PWD/data:/data avprep \
#       torchrun --nproc_per_node 4 -m avmodels train METHOD ...   (see docs/training.md)
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    AVPREP_HOME=/cache/avprep

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-pip python3-venv ffmpeg git ca-certificates libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/avprep
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY avprep ./avprep
COPY avmodels ./avmodels
COPY metadata ./metadata
COPY pipelines ./pipelines

# torch's default wheel on Linux is a CUDA build. The wheel carries metadata/
# and pipelines/ inside the package (setup.py), so the source tree is removed
# after the install: what runs is exactly what `pip install avprep` would give.
RUN python3 -m pip install --upgrade pip \
 && python3 -m pip wheel --no-deps -w /tmp/wheels . \
 && python3 -m pip install "$(ls /tmp/wheels/avprep-*.whl)[dask]" \
 && rm -rf /tmp/wheels /opt/avprep

VOLUME ["/data", "/cache"]
WORKDIR /data
CMD ["avprep", "doctor"]
