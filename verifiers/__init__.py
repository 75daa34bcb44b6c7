"""verifiers — one verifier per domain (and task kind), each a pure function of
(task, messages[, sandbox]) -> Verdict. See ``base.py`` for the Protocol and
``registry.py`` for lookup by (domain, kind).
"""
