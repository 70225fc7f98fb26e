#!/usr/bin/env bash
# The demo: the REES46 sample (real storefront events) through the real local stack.
# Imports it into Kafka, runs the detector worker in event mode until every period is
# closed, and shows the records per topic and a few abandonments. Runs under `make demo`.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARTPULSE_TOPIC_PREFIX=${CARTPULSE_TOPIC_PREFIX:-demo-$(date +%s).}
export CARTPULSE_TOPIC_PARTITIONS=${CARTPULSE_TOPIC_PARTITIONS:-4}
export CARTPULSE_DATA_DIR=${CARTPULSE_DATA_DIR:-.cartpulse/demo}
export CARTPULSE_WEB_PORT=${CARTPULSE_WEB_PORT:-0}
sample=data/rees46/multicategory-2019-10-01-head.csv
log=.cartpulse/demo-worker.log
mkdir -p .cartpulse

echo "== topics (prefix ${CARTPULSE_TOPIC_PREFIX})"
cartpulse topics create | tail -n 3
echo "== import ${sample}"
cartpulse import --quiet "$sample"

echo "== detector worker (event mode, 10-minute gap); log: $log"
cartpulse worker --clock event --gap 10m --loglevel warn >"$log" 2>&1 &
worker=$!
trap 'kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT
expected=$(cartpulse detect --input "$sample" --gap 10m --flush --output - 2>/dev/null | wc -l)
# The sample is over: once the worker has read it, close every open period.
cartpulse watermark end >/dev/null
for _ in $(seq 1 60); do
  got=$(cartpulse topics counts | awk -v t="${CARTPULSE_TOPIC_PREFIX}abandonments" '$1 == t {gsub(",", "", $2); print $2}')
  [ "${got:-0}" -ge "$expected" ] && break
  sleep 1
done

echo "== records per topic"
cartpulse topics counts | grep -v ' 0$' || true
echo "== offline detect on the same file gives ${expected} abandonments; the worker gave ${got:-0}"
echo "== three of them"
python - <<'PY'
import asyncio, os, orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

async def main() -> None:
    topic = os.environ["CARTPULSE_TOPIC_PREFIX"] + "abandonments"
    consumer = AIOKafkaConsumer(bootstrap_servers=os.environ.get("CARTPULSE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        batch = await consumer.getmany(timeout_ms=5000, max_records=50)
        records = [orjson.loads(r.value) for part in batch.values() for r in part]
        carts = [r for r in records if r["kind"] == "cart"][:1] + [r for r in records if r["kind"] == "browse"][:2]
        for record in carts:
            print(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
    finally:
        await consumer.stop()

asyncio.run(main())
PY
