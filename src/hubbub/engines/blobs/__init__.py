"""Blob stores: where uploaded files and thumbnails live (docs/media.md)."""
