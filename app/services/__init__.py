"""Business logic: services take validated input, use repositories, raise domain errors."""
