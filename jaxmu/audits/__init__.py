"""Audits of unlearned populations against retrained ones, from one cached population."""
