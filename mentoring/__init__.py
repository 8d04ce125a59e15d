"""Mentoring: pairing, the Q&A board, training hours, certificates, donations (grows in later issues)."""
