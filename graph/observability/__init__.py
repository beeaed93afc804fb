"""What the server tells its operators: request logs, Prometheus metrics and OpenTelemetry traces."""
