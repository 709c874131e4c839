"""The Kafka runtime: consumer-group member, transactions, changelog, readiness, endpoints."""
