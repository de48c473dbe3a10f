"""Qt-free clinical logic: images, quality gate, classifier, protocol, store, reports, batch.

Nothing in this package may import Qt (``tests/test_architecture.py`` enforces it)
or import TensorFlow at module level.
"""
