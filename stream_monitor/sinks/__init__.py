"""Where results go: Kafka topics, JSONL files, webhooks, Prometheus."""
