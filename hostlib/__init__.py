"""CPython-side helpers that more than one of controller, fieldtools and simulator need.

Stdlib only and nothing that runs on a node: it sits below those three in the layers
(tests/test_layers.py), so each can use it without importing another.
"""
