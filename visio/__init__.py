"""visio: video appointments between France Services desks and operator back-offices."""
