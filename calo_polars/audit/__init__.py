"""Audit: one run of the checks over what was read — its options, its result, selections and incremental state."""
