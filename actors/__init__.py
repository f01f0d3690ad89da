"""Ray actors: thin stateful shells around the pure functions in `engine`."""
