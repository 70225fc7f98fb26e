"""One frozen settings object for every cartpulse process (env prefix ``CARTPULSE_``).

Load it once at the edge (``Settings()`` in the CLI) and pass it down; nothing reads the
environment at import time. Secrets are ``SecretStr`` so they print as ``**********``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from streams.contract.durations import to_timedelta
from streams.contract.errors import ConfigurationError

_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Every duration setting: 90s, 30m, 1h30m, 5d, 500ms, PT30M, or a number of seconds
# (streams/contract/durations.py, the syntax of the flags and the policy file too).
Duration = Annotated[timedelta, BeforeValidator(to_timedelta)]
PositiveDuration = Annotated[timedelta, BeforeValidator(lambda v: to_timedelta(v, positive=True))]
SenderRole = Literal["sms", "email", "consent-mirror", "coupons"]


class Settings(BaseSettings):
    """Every setting of cartpulse, read from ``CARTPULSE_*`` variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(
        env_prefix="CARTPULSE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Kafka
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_client_id: str = "cartpulse"

    # Topics
    topic_prefix: str = Field("", description="Prepended to every topic name, e.g. 'prod.'.")
    topic_partitions: int = Field(8, ge=1, le=10_000)
    topic_replication: int = Field(
        1, ge=1, le=16, description="Replicas of every topic cartpulse creates; 3 in production."
    )
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=16,
        description="min.insync.replicas of every topic cartpulse creates: the replicas an "
        "acks=all write waits for. Unset: 2 when CARTPULSE_TOPIC_REPLICATION is 3 or more (one "
        "broker may be down, no write has a single copy), else 1.",
    )
    dlq_retention: PositiveDuration = Field(
        timedelta(days=14), description="Retention of *.dlq topics."
    )

    # Redis
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="redis:// or rediss:// (TLS) URL, with credentials if the server needs them.",
    )

    # Faust state
    store: str = Field("rocksdb://", description="Faust table store: rocksdb:// or memory://.")
    data_dir: Path = Field(Path(".cartpulse"), description="Where workers keep local state.")
    table_standby_replicas: int = Field(
        1,
        ge=0,
        le=3,  # each standby reads every changelog once more and holds the state on disk again
        description="Standby copies of each table partition, kept current from its changelog "
        "by other workers, so a dead worker's partitions move without a changelog replay; "
        "0 = none. A single worker has no standby whatever the value (docs/operations.md).",
    )

    # Event contract
    max_record_bytes: int = Field(64 * 1024, ge=1024)
    default_store_id: str = "default"

    # Detector (docs/semantics.md, Detection)
    clock: Literal["live", "event"] = Field(
        "live", description="live: idle partitions' watermarks follow the wall clock; event: never."
    )
    gap: PositiveDuration = Field(
        timedelta(minutes=30), description="Inactivity that ends a period."
    )
    min_product_views: int = Field(1, ge=1)
    lateness: Duration = Field(timedelta(0), description="Allowed lateness of events.")
    journeys_lateness: Duration = Field(
        timedelta(seconds=5),
        description="live clock: a journey step due at T is judged at T + this, so inputs "
        "that happened before T and arrive up to this late still count (docs/semantics.md).",
    )
    dedup_window: PositiveDuration = Field(
        timedelta(hours=24), description="Duplicate event ids window."
    )
    tick_interval: PositiveDuration = Field(
        timedelta(milliseconds=500), description="How often the leader wakes every partition."
    )
    state_flush_interval: PositiveDuration = Field(
        timedelta(seconds=1), description="How often changed sessions are written to the table."
    )
    worker_id: str = Field("cartpulse-detector", description="Faust app id (consumer group).")
    web_port: int = Field(6066, ge=0, le=65535, description="/metrics, /healthz, /readyz port.")
    web_host: str = Field(
        "127.0.0.1",
        description="Interface of the worker's web port; 0.0.0.0 in containers, where probes "
        "and Prometheus come from outside.",
    )
    group_instance_id: str | None = Field(
        None,
        description="Kafka static membership (KIP-345) of the worker: a stable id per worker "
        "(the StatefulSet pod name), so a restart within the session timeout moves no partition.",
    )
    session_timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        ge=timedelta(seconds=6),  # the broker's default group.min.session.timeout.ms
        le=timedelta(minutes=5),
        description="How long the group waits for a silent worker before moving its partitions: "
        "short moves a dead worker's work quickly; with static membership, longer lets a "
        "restart of that length keep its partitions.",
    )

    # Journeys (docs/semantics.md, Journeys)
    policy_file: Path | None = Field(
        None, description="Flow policy (TOML); the shipped default policy when unset."
    )
    templates_dir: Path | None = Field(
        None,
        description="A template pack laid out like the shipped one; searched after a store's "
        "own folder and before the shipped templates (docs/semantics.md, Messages).",
    )
    coupon_secret: SecretStr = Field(
        SecretStr(""), description="HMAC key of coupon codes; required when a step has one."
    )
    journeys_enabled: bool = Field(True, description="Run the journeys agent in the worker.")
    journeys_dry_run: bool = Field(False, description="Mark every command dry_run.")

    # Senders (docs/architecture.md, Guarantees)
    redis_cluster: bool = Field(False, description="Redis is a Cluster (keys use hash tags).")
    redis_key_prefix: str | None = Field(
        None,
        description="Prefix of every Redis key the senders, the mirror and the webhooks use; "
        "unset: CARTPULSE_TOPIC_PREFIX + 'cartpulse:' (effective_redis_key_prefix).",
    )
    sender_group: str | None = Field(
        None,
        min_length=1,
        description="Consumer group base of the senders and the mirror; '.sms', '.email', "
        "'.consent-mirror' is appended. Unset: CARTPULSE_TOPIC_PREFIX + 'cartpulse-senders'.",
    )
    sender_concurrency: int = Field(16, ge=1, le=1024, description="Commands in flight/replica.")
    sender_inline_wait: Duration = Field(
        timedelta(seconds=2),
        description="Longest rate-limit slot or back-off awaited in place (and reserved ahead).",
    )
    sender_hold_limit: Duration = Field(
        timedelta(seconds=30),
        description="Longer limiter waits or back-offs move the command to the retry topic.",
    )
    sender_backoff_base: PositiveDuration = Field(timedelta(milliseconds=500))
    sender_backoff_max: PositiveDuration = Field(timedelta(minutes=5))
    sender_claim_ttl: PositiveDuration = Field(
        timedelta(seconds=30),
        description="How long a replica's claim on a command lives before another may take it.",
    )
    sender_ledger_ttl: PositiveDuration = Field(
        timedelta(days=7), description="Ledger retention; keep it above any command's lifetime."
    )
    sender_retry_unknown: bool = Field(
        False, description="Resend after an ambiguous outcome (risks a duplicate message)."
    )
    sender_session_timeout: PositiveDuration = Field(timedelta(seconds=10))
    sender_mirror_stale_after: PositiveDuration = Field(
        timedelta(minutes=1),
        ge=timedelta(seconds=10),
        description="A sender reports not-ready (and logs) while the consent mirror of its key "
        "prefix has not been caught up for this long, or has no heartbeat; sends go on.",
    )
    sender_http_port: int = Field(0, ge=0, le=65535, description="/metrics, /healthz; 0 = off.")
    sender_http_host: str = Field(
        "127.0.0.1",
        description="Interface of the senders' and the mirror's HTTP port; 0.0.0.0 in "
        "containers, where probes and Prometheus come from outside.",
    )
    sender_rate_margin: float = Field(
        0.015, ge=0.0, lt=0.5, description="Pace this share under each configured rate."
    )
    twilio_api_base: str = Field("https://api.twilio.com", pattern=r"^https?://[^\s/]+(/\S*)?$")
    twilio_account_sid: str = Field("", pattern=r"^(AC[0-9a-fA-F]{32})?$")
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_from: str | None = Field(None, description="Sender number or alphanumeric ID.")
    twilio_messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    twilio_status_callback: str | None = Field(None, description="Delivery status webhook URL.")
    twilio_validity_period: PositiveDuration | None = Field(None, description="1 s .. 10 h.")
    twilio_timeout: PositiveDuration = Field(timedelta(seconds=10))
    twilio_connect_timeout: PositiveDuration = Field(timedelta(seconds=3))
    sms_rate: float = Field(1.0, gt=0, description="Segments/s per sender identity.")
    sms_burst: int = Field(1, ge=1, description="Segments a sender identity may send at once.")
    sms_account_rate: float = Field(100.0, gt=0, description="Segments/s per Twilio account.")
    sms_account_burst: int = Field(10, ge=1)
    sms_smart_encoding: bool = Field(True, description="Replace look-alikes to stay in GSM-7.")
    sms_max_segments: int = Field(10, ge=1, le=24)
    sms_require_opt_in: bool = Field(True, description="SMS only with an opted_in record.")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = Field(None, description="Extra CA to trust for the relay.")
    smtp_pool_size: int = Field(2, ge=1, le=32, description="Long-lived connections per replica.")
    smtp_timeout: PositiveDuration = Field(timedelta(seconds=30))
    email_from: str = "Cartpulse <shop@example.com>"
    email_rate: float = Field(20.0, gt=0, description="Messages/s per SMTP relay.")
    email_burst: int = Field(20, ge=1)
    email_account_rate: float = Field(100.0, gt=0, description="Messages/s per relay account.")
    email_account_burst: int = Field(100, ge=1)
    email_unsubscribe_url: str = Field("https://example.com/unsubscribe", pattern=r"^https://\S+$")
    email_unsubscribe_mailto: str = Field("unsubscribe@example.com", pattern=r"^[^@\s<>]+@\S+$")
    unsubscribe_secret: SecretStr = Field(
        SecretStr(""), description="HMAC key of unsubscribe tokens; required to send email."
    )
    unsubscribe_token_ttl: PositiveDuration = Field(timedelta(days=90))

    # Coupons (docs/compliance.md, Coupons): `cartpulse coupons` registers each issued code
    # with the store's coupon_provider (the policy's [stores.<id>]); senders wait for it.
    coupon_webhook_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/\S*)?$",
        description="Where the webhook provider POSTs each coupon (JSON, HMAC-signed).",
    )
    coupon_webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="HMAC-SHA256 key of X-Cartpulse-Signature on coupon webhooks; required "
        "for the webhook provider.",
    )
    coupon_webhook_timeout: PositiveDuration = Field(timedelta(seconds=10))
    coupon_shopify_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+$",
        description="The shop's Admin API origin, https://<shop>.myshopify.com (a test server "
        "in tests); codes are created at <url>/admin/api/<version>/graphql.json.",
    )
    coupon_shopify_token: SecretStr = Field(
        SecretStr(""),
        description="Admin API access token (X-Shopify-Access-Token) with write_discounts.",
    )
    coupon_shopify_api_version: str = Field("2025-07", pattern=r"^\d{4}-(01|04|07|10)$")
    coupon_topic_ack: bool = Field(
        False,
        description="topic provider: a code counts as registered only once the store's own "
        "systems write it back to the coupons topic with status registered; false: once it "
        "is on the topic.",
    )
    coupon_registration_wait: PositiveDuration = Field(
        timedelta(hours=1),
        description="How long a sender holds a command whose coupon is not registered yet "
        "(from the command's created_at); then it is not sent: coupon_unavailable.",
    )
    coupon_recheck: PositiveDuration = Field(
        timedelta(seconds=5),
        description="How often a held command looks again whether its coupon is registered.",
    )
    coupon_retry_max: PositiveDuration = Field(
        timedelta(minutes=1), description="Longest back-off between registration attempts."
    )
    coupon_retention: PositiveDuration = Field(
        timedelta(days=30),
        description="How long past its expiry a coupon's state stays in Redis (reuse reports).",
    )

    # Webhooks
    webhooks_host: str = Field(
        "0.0.0.0",  # noqa: S104 - Twilio, mail clients and probes reach it from outside
        description="Interface the webhooks service binds.",
    )
    webhooks_port: int = Field(
        8080, ge=1, le=65535, description="Public port: the webhooks, /healthz and /readyz."
    )
    webhooks_metrics_host: str = Field(
        "127.0.0.1",
        description="Interface of the webhooks' /metrics port (also /healthz, /readyz); "
        "0.0.0.0 in containers, where Prometheus scrapes from outside. Never public.",
    )
    webhooks_metrics_port: int = Field(
        9100, ge=1, le=65535, description="Port of the webhooks' /metrics, off the public port."
    )
    webhooks_keepalive_timeout: PositiveDuration = Field(
        timedelta(seconds=15),
        gt=timedelta(0),
        description="An open connection that sends nothing this long (before its first "
        "request or between requests) is closed.",
    )
    webhooks_header_timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        description="A request line and headers must be complete this long after their first "
        "byte, or the connection is closed (slow clients, slowloris).",
    )
    webhooks_body_timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        description="A request body must arrive within this once the headers have; else 408.",
    )
    webhooks_max_connections: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Open connections at most; beyond it new ones get 503 and are closed. "
        "Keep it under the process's file descriptor limit (ulimit -n).",
    )
    webhooks_public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Scheme, host (and any path prefix a proxy strips) Twilio calls; "
        "signatures cover this URL followed by the request's path and query.",
    )
    webhooks_max_body_bytes: int = Field(
        16 * 1024, ge=1024, le=1024 * 1024, description="Larger request bodies get 413."
    )
    webhooks_opt_out_keywords: tuple[str, ...] = Field(
        (), description="Extra SMS opt-out keywords (JSON list), beside STOP, STOPALL, ..."
    )
    webhooks_help_reply: str = Field(
        "",
        description="TwiML reply to HELP and INFO for every store; '' = each store's own "
        "(its _help template, with its brand and support contact).",
    )
    webhooks_opt_out_reply: str = Field("", description="Reply to STOP; '' = none (Twilio's).")
    webhooks_opt_in_reply: str = Field("", description="Reply to START; '' = none (Twilio's).")
    webhooks_dedup_ttl: PositiveDuration = Field(
        timedelta(days=2), description="How long a Twilio callback is remembered (retries)."
    )
    webhooks_redirect_hosts: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description='Click redirect hosts per store_id, JSON: {"store-1": ["shop.example.com"]}; '
        '"*" applies to every store.',
    )
    click_secret: SecretStr = Field(
        SecretStr(""), description="HMAC key of click-tracking tokens; required to serve clicks."
    )
    click_token_ttl: PositiveDuration = Field(timedelta(days=30))
    email_click_tracking: bool = Field(
        False,
        description="Route email links through the webhooks' /c/ redirect, recording clicks "
        "on engagement; needs CARTPULSE_CLICK_SECRET and CARTPULSE_WEBHOOKS_PUBLIC_URL, and "
        "tracks only links to hosts in CARTPULSE_WEBHOOKS_REDIRECT_HOSTS.",
    )
    email_open_tracking: bool = Field(
        True,
        description="Where email click tracking is on (for a store with redirect hosts), also "
        "put a 1x1 pixel in each email that records email_opened on engagement when loaded; "
        "false: clicks only. Opens are unreliable (image blocking, Apple Mail Privacy "
        "Protection): flow conditions should prefer engagement.clicked.",
    )
    phone_index_ttl: PositiveDuration = Field(
        timedelta(days=400),
        description="How long the SMS sender remembers which customers it texted at a number.",
    )

    # Consent history (docs/compliance.md, Consent history)
    address_hash_key: SecretStr = Field(
        SecretStr(""),
        description="HMAC-SHA256 key of the pseudonyms and address hashes in consents.history "
        "and the erasures; keep it as long as the history (a new key no longer matches old "
        "records). Unset: plain SHA-256, which a dictionary of phone numbers reverses.",
    )
    consent_history_retention: PositiveDuration | None = Field(
        None,
        description="retention.ms of consents.history when it is created; unset: forever.",
    )

    # Collector (docs/collector.md)
    collect_host: str = Field(
        "127.0.0.1",
        description="Interface of the collector's public port; 0.0.0.0 in containers, where "
        "storefronts (through the ingress) and probes come from outside.",
    )
    collect_port: int = Field(8090, ge=1, le=65535, description="Public port: /v1/events.")
    collect_metrics_host: str = Field(
        "127.0.0.1",
        description="Interface of the collector's /metrics port (also /healthz, /readyz); "
        "0.0.0.0 in containers, where Prometheus scrapes from outside. Never public.",
    )
    collect_metrics_port: int = Field(
        9102, ge=1, le=65535, description="Port of the collector's /metrics, off the public port."
    )
    collect_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Per-store secrets, JSON: {"store-1": "…"}; sent as a bearer token or used '
        "as the HMAC-SHA256 key of X-Cartpulse-Signature.",
    )
    collect_pixel_keys: dict[str, str] = Field(
        default_factory=dict,
        description='Per-store public keys of a browser pixel, JSON: {"store-1": "pk_…"}; '
        "taken only from CARTPULSE_COLLECT_ALLOWED_ORIGINS (they are visible in the page).",
    )
    collect_allowed_origins: tuple[str, ...] = Field(
        (),
        description='Browser origins allowed to send (CORS), JSON list: ["https://shop.example"].',
    )
    collect_max_events: int = Field(500, ge=1, le=10_000, description="Events per request.")
    collect_max_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger request bodies get 413."
    )
    collect_produce_timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        description="How long a request waits for Kafka's acknowledgement before a 503.",
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("give at least one broker as host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _TOPIC_PREFIX.match(value):
            raise ValueError("a topic prefix may only hold letters, digits, '.', '_' and '-'")
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if not value.startswith(("rocksdb://", "memory://")):
            raise ValueError("store must be rocksdb:// (durable, the default) or memory://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _windows(self) -> Settings:
        if self.gap <= timedelta(0):
            raise ValueError("CARTPULSE_GAP: must be longer than 0")
        if self.lateness < timedelta(0):
            raise ValueError("CARTPULSE_LATENESS: must not be negative")
        if self.dedup_window < self.gap:
            raise ValueError(
                f"CARTPULSE_GAP ({self.gap}) is longer than CARTPULSE_DEDUP_WINDOW "
                f"({self.dedup_window}): a duplicate could come back within one period; "
                "raise the dedup window or shorten the gap"
            )
        return self

    @model_validator(mode="after")
    def _replicas(self) -> Settings:
        if self.min_insync_replicas > self.topic_replication:
            raise ValueError(
                f"CARTPULSE_TOPIC_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) is more than "
                f"CARTPULSE_TOPIC_REPLICATION ({self.topic_replication}): Kafka would refuse "
                "every write; lower it or raise the replication"
            )
        return self

    @model_validator(mode="after")
    def _security(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL")
        if sasl and (
            self.kafka_sasl_mechanism is None
            or self.kafka_sasl_username is None
            or self.kafka_sasl_password is None
        ):
            raise ValueError(
                f"kafka_security_protocol={self.kafka_security_protocol} needs "
                "CARTPULSE_KAFKA_SASL_MECHANISM, _USERNAME and _PASSWORD"
            )
        return self

    @property
    def min_insync_replicas(self) -> int:
        """``topic_min_insync_replicas`` when set, else 2 from a replication of 3 on, else 1."""
        if self.topic_min_insync_replicas is not None:
            return self.topic_min_insync_replicas
        return 2 if self.topic_replication >= 3 else 1

    def topic_configs(self) -> dict[str, str]:
        """The configs every topic cartpulse creates carries, under its own (the CLI's
        ``create_topics`` and the worker's Faust topics and changelogs alike)."""
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    @property
    def worker_group(self) -> str:
        """The worker's Faust app id and consumer group (what `cartpulse watermark` waits on)."""
        return f"{self.topic_prefix}{self.worker_id}"

    @property
    def effective_redis_key_prefix(self) -> str:
        """The Redis key prefix in use: ``redis_key_prefix`` when set (even to ''), else
        ``topic_prefix + 'cartpulse:'``, so two deployments on one Redis never share a key."""
        if self.redis_key_prefix is not None:
            return self.redis_key_prefix
        return f"{self.topic_prefix}cartpulse:"

    def sender_group_id(self, role: SenderRole) -> str:
        """The consumer group of a sender channel or of the consent mirror: ``sender_group``
        when set, else ``topic_prefix + 'cartpulse-senders'``, then ``.<role>``."""
        base = self.sender_group
        if base is None:
            base = f"{self.topic_prefix}cartpulse-senders"
        return f"{base}.{role}"

    def kafka_client_options(self) -> dict[str, object]:
        """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
            "client_id": self.kafka_client_id,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            assert self.kafka_sasl_password is not None  # noqa: S101 - checked by _security
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
            }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
                certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
                keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
            )
        return options


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, turning validation errors into one clear error."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # overrides are validated here
    except SettingsError as exc:
        raise ConfigurationError(f"invalid settings: {_undecodable(exc)}") from None
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from None


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """One error: the variable and what is wrong (a whole-settings check names its own)."""
    message = message.removeprefix("Value error, ")
    if not loc:
        return message
    return f"CARTPULSE_{'_'.join(str(p) for p in loc).upper()}: {message}"


_FIELD = re.compile(r'field "(\w+)"')


def _undecodable(exc: SettingsError) -> str:
    """Which variable pydantic-settings could not decode as JSON, and what it must look like."""
    found = _FIELD.search(str(exc))
    if found is None:
        return str(exc)
    name = found.group(1)
    annotation = (
        str(Settings.model_fields[name].annotation) if name in Settings.model_fields else ""
    )
    shape = (
        'a JSON object, e.g. {"store-1": ["shop.example.com"]}'
        if annotation.startswith("dict")
        else 'a JSON list, e.g. ["REVOKE", "ANNULER"]'
    )
    return f"CARTPULSE_{name.upper()}: must be {shape}"
