"""homevitals' runtime, which every daemon runs on: the MQTT client and its connection, the durable
outbox, the subscriber, dead letters, metrics and health, the one daemon runner, systemd notify,
durable state and timers, the embedded broker and the broker ACL. It may import the vocabulary
(``homevitals.vocab``), never a stage or a composition root (``homevitals.roots``)."""
