"""Parse: log files split into events, grouped into invocations by requestId, read into typed tables."""
