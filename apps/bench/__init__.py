"""The benchmarks (``python manage.py streambench``): they may import every app, and nothing
imports them (``tests/test_architecture.py``)."""
