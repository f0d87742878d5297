"""fleet: science servers for a classroom, one command."""
