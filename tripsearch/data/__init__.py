"""Offline data: the places table (cities, autocomplete) and the seeded trip generator built on it."""
