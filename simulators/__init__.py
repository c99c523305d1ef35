"""homevitals simulators stage."""
