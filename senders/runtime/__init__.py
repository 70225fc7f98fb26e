"""The senders' loops and wiring: consume, decide, act through the adapters, record, commit;
the consent mirror, the preview, the HTTP endpoints and the metrics catalogue."""
