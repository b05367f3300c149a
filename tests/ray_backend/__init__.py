"""Tests of the Ray backend (``tasker_aio.ray``) against a real local Ray."""
