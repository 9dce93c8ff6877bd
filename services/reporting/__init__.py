"""reporting: MongoDB read models kept current from the lifecycle and notification events, and the leaders' API."""
