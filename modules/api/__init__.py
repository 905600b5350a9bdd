"""A1111's `modules.api` package."""
