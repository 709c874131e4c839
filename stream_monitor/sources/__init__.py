"""Where records come from: Kafka messages or JSONL files, as RecordBatch."""
