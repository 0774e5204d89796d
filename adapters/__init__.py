"""Adapters that make other GAN codebases growable (installed as `progrow.adapters`).

Each adapter is a subpackage or module of its own; nothing is imported here, so importing
`progrow.adapters` pulls in no optional dependency.
"""
