"""The four command-line programs behind the top-level scripts; each turns flags into library calls.

No program imports another; they share the library (``kdiff_gc``) only.
"""
