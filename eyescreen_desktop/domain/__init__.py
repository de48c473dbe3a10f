"""The clinical vocabulary, stated once: pure rules with no I/O that every layer imports.

Nothing here reads a file, a database or a model, and nothing here imports the rest
of EyeScreen (an import-linter contract in pyproject.toml keeps it so). When the
window, the batch, the slip and training all need "which eye is this file", "is
grade 2 referable" or "what do we call this status", they ask this package, so the
answers cannot drift apart.

* :mod:`.vocabulary`: Status, Queue, Eye and Modality with their words for staff,
  and the words for the quality gate's reasons.
* :mod:`.eyes`: the patient and eye side a file name states.
* :mod:`.grades`: ICDR cut-offs (referable >= 2, urgent >= 3) and the referral-flag rule.
* :mod:`.thresholds`: how an operating point's thresholds are chosen, rounded down.
"""
