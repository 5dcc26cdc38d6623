"""The event bus: outbox, relay, batched consumer, dead letters, topology, kombu internals."""
