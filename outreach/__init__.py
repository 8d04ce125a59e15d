"""Jinshi Bridge: the Django project and the outreach foundation layer (districts, schools, people, audit)."""
