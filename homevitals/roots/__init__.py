"""homevitals' composition roots: the only modules that wire stages together (the ``homevitals``
command, the demo, the replay, the console's wiring). ``cli`` imports each stage only when its
subcommand runs, so the Pi never loads server code."""
