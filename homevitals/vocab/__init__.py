"""homevitals' vocabulary, which every stage shares: readings, units, topics, the wire format, the
configuration models, the clock, the exception family and the origin checks. Pure Python and
pydantic; it imports neither the runtime (``homevitals.infra``) nor the composition roots
(``homevitals.roots``)."""
