"""intake: the front door — validates incoming events, gives each an id and publishes it durably (acks=all)."""
