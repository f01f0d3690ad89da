"""The adapters layer: the engine's I/O, each library behind one module.

Redis (`redis_store`, the only importer of redis-py; the commit publisher and the pipeline's
sink; the consumer's `SignalReader`), history files and the Spark loader, replay feeds and
synthetic data. Below the Ray runtime: nothing here starts actors.
"""
