"""simsignal: live similar-history signals (Spark on Ray → Ray shard actors → Redis).

The import package maps the project's top-level folders `engine/`, `actors/` and `config/`
(symbolic links here) so that installed names are `simsignal.engine`, `simsignal.actors` and
`simsignal.config`, never generic top-level `engine` or `actors`.
"""
