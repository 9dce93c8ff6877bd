"""Delivery channels, one module each, behind one interface: ``async send(target, message, key)``."""
