"""Machine-learning core of the few-shot service, in pure PyTorch.

Nothing here imports the web framework or the database layer, so the CLI, the
server, the benchmarks and the tests all run the same maths.
"""
