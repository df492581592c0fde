"""Generators: a pure PyTorch/numpy core (``generators.core``, no Django) and its Django side
(GeneratorRun jobs, releases, API, commands)."""
