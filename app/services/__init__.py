"""Long-running services: the timer loop, the scheduler, the embedded worker."""
