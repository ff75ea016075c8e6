"""Stand-ins for the outside services dosewise talks to, run for real on loopback."""
