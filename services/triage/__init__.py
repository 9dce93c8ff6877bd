"""triage: owns the ticket (工单) — classifies, locates, routes and sets deadlines for every accepted event."""
