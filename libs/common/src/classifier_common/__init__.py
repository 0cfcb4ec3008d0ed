"""Code shared by every classifier service: domain, messages, settings, logging, metrics, adapters."""
