"""Tests of the media engine (live.media): real aiortc peers, real clip, real files."""
