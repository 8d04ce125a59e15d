"""Live lessons: scheduling, signalling, media workers, attendance, recording."""
