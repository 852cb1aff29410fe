"""Analyses: pure functions over the warehouse that return typed, JSON-serializable results."""
