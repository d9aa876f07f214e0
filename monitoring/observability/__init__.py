"""Is the service up and how busy is it: health probes, Prometheus metrics, structured logs, system samples."""
