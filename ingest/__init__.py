"""homevitals ingest stage."""
