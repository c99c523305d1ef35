"""homevitals gateway stage."""
