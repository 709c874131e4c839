"""Statistics and decisions on a window against a prepared reference.

Pure functions of numpy arrays: no Kafka, no Prometheus, no clocks. Each module checks its
results against scipy (or a closed form) in the tests.
"""
