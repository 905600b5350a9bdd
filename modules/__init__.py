"""A1111's import surface for extensions, and nothing else.

Extensions written for AUTOMATIC1111's web UI import `modules.shared`, `modules.scripts`, `modules.processing`, ...
Each file here carries one of A1111's module names and translates it into our own package, `sdui`. Our code never
imports `modules`: it receives what it needs explicitly (see docs/ARCHITECTURE.md).
"""
