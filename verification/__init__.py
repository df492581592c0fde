"""Verification: re-check findings from synthetic data on the real data with differentially
private answers. ``verification.core`` is the pure engine (no Django): DataFrames, a schema and a
hypothesis in, a plain :class:`~verification.core.answer.Answer` out."""
