# k-WTA Explorer: the Streamlit app with the library and pretrained/ baked in.
# GPU box: docker run --gpus all -p 8501:8501 IMAGE   (works without a GPU too)
# Check it there: docker run --rm --gpus all IMAGE python -m kwta doctor
# The base: any Debian with Python 3.11 as `python`/`pip` and its headers. Where no registry
# is reachable, scripts/make_base_image.sh makes one with debootstrap (scripts/build_image.sh
# does that by itself and passes --build-arg BASE=...).
ARG BASE=python:3.11.11-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501

# A C compiler at run time: Triton builds its launcher for the CUDA k-WTA kernel with it, and
# torch.utils.cpp_extension the optional CPU kernel (kwta/nn/native). Versions follow the
# base's Debian release, so they are not pinned here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 explorer
WORKDIR /home/explorer/app

# PyTorch's CUDA variant, for the driver the GPU box has (`nvidia-smi` shows it):
#   cu130 (default, PyPI's wheels) needs driver 580+; cu128 needs 570+; cu126 needs 560+.
#   docker build --build-arg TORCH_CUDA=cu126 -t kwta-explorer .
ARG TORCH_CUDA=cu130
# Where the build may not reach PyPI itself, scripts/build_image.sh passes PIP_NO_INDEX=1 and
# PIP_FIND_LINKS=<a wheelhouse the host's pip filled, served on 127.0.0.1>.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
# Only the requirements before the big install: a change to the code or the docs rebuilds
# the layers below, not the 3 GB of wheels.
COPY requirements.txt ./
RUN if [ "$TORCH_CUDA" != "cu130" ]; then \
        pip install "torch==2.14.1" "torchvision==0.29.1" \
            --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}"; \
    fi \
    && pip install -r requirements.txt "ninja==1.13.0"

COPY pyproject.toml README.md ./
COPY kwta/ kwta/
COPY models/ models/
COPY app/ app/
COPY pretrained/ pretrained/
COPY .streamlit/ .streamlit/
RUN pip install --no-deps -e .

USER 10001
# Compile the CPU k-WTA kernel now, into the user's ~/.cache/torch_extensions, so that the
# first k-WTA forward on a CPU-only box does not wait a minute for it (a warning, not a
# failure, where it cannot be built: the PyTorch path serves).
RUN python -c "from kwta.nn import native; native.cpu_kernel()"
EXPOSE 8501
# Checked every 10 s (measured: the server answers a few seconds after start; a 30 s
# interval kept a ready container "starting" for 30 s). Docker 25's --start-interval would
# do better but older engines (Debian's 20.10) refuse the flag.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "app/server.py"]
