"""`simsignal bench`: fixed-seed workloads, the engine run as a user runs it, a timing client.

The client is a separate process that times each minute through real Redis.
"""
