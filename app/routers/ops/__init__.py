"""Operations: liveness and readiness (`health`), Prometheus and programme metrics
(`metrics`)."""
