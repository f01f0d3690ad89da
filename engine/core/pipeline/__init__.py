"""The per-minute path without Ray or Redis: batching, merging, forecasting, signalling."""
