"""A model's sliding window: ring buffers with reference look-ups done on entry."""
