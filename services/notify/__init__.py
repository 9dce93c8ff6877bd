"""notify: turns ticket lifecycle events into messages to units and leaders over real channels."""
