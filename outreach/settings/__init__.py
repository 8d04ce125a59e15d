"""Settings split by environment: ``base`` holds everything shared; ``dev``, ``test`` and ``production`` adjust it."""
