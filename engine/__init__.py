"""simsignal's engine: pure maths, data handling and Redis I/O (no Ray inside the maths)."""
