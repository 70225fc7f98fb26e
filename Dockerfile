# syntax=docker/dockerfile:1
# The cartpulse image: one image, every process. The command picks the process:
#   cartpulse worker | send sms | send email | consents mirror | webhooks | replay | ...
# Build: docker build -t cartpulse .   (docker-compose.kafka.yml --profile full builds it too)
# Needs BuildKit (Docker's default builder since 23.0): the final stage mounts the wheels.

# Stage 1 builds wheels: cartpulse's own, whose detection core (native/) is Rust compiled by
# cargo through setuptools-rust, and every dependency's. It starts from the same python image as
# the final stage, so the wheels are resolved for exactly the interpreter that runs them; rustup's
# minimal toolchain is simpler than fitting a Python 3.11 into a rust image. gcc and libc6-dev:
# rustc links with cc, and mimalloc's C source is compiled by it.
FROM python:3.11-slim AS build

ARG RUST_TOOLCHAIN=stable
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUSTUP_HOME=/opt/rustup \
    CARGO_HOME=/opt/cargo \
    PATH=/opt/cargo/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
       | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "$RUST_TOOLCHAIN" \
    && cargo --version

WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY native ./native
COPY streams ./streams
COPY senders ./senders
# A wheel build is a release build (lto, one codegen unit); the dependencies come as wheels.
RUN pip wheel --wheel-dir /wheels .

# Stage 2, the image: the wheels only, no Rust and no compiler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Mounted, not copied: the wheels stay out of the image's layers.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels cartpulse \
    && useradd --system --uid 10001 --home-dir /var/lib/cartpulse --create-home cartpulse

# Containers are reached from outside: probes and Prometheus scrape the worker's web port,
# which binds to 127.0.0.1 by default. RocksDB state lives in a volume.
ENV CARTPULSE_WEB_HOST=0.0.0.0 \
    CARTPULSE_DATA_DIR=/var/lib/cartpulse
VOLUME ["/var/lib/cartpulse"]
USER 10001
EXPOSE 6066 8080 9100

ENTRYPOINT ["cartpulse"]
CMD ["--help"]
