"""homevitals rules stage."""
