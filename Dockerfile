# The cartpulse image: one image, every process. The command picks the process:
#   cartpulse worker | send sms | send email | consents mirror | webhooks | replay | ...
# Build: docker build -t cartpulse .   (docker-compose.kafka.yml --profile full builds it too)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Every dependency (faust-streaming, aiokafka, rocksdict, orjson, ...) installs from wheels:
# no compiler in the image.
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY senders ./senders
RUN pip install . \
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
