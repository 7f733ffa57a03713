"""The engine: the pure executor step, the events that drive it, routing to worker groups, dispatch."""
