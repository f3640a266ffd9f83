"""The shared kernel: rules every app needs and no app owns.

Domain errors, time helpers, content kinds, offsets, run statuses and the middleware base. It
imports Django and the standard library only, never an app (``tests/test_architecture.py``).
"""
