"""Partitioned runs: the logs parsed once into a store partitioned by user, the plan run per partition, merged."""
