"""homevitals alerts stage."""
