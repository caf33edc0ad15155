"""Serving: the prelabel server (Label Studio's ML-backend HTTP API), request batching,
the LangChain chain, the scorers and the telemetry."""
