"""Task plugins: one module per family. `RUNNABLE_TASKS` lists every class a worker can run."""
