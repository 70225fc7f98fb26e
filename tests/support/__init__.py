"""Helpers shared by the test modules.

A test module imports what it shares with others from here, never from another test module.
"""
