"""The courseware library: recorded classes and materials, stored through Django storage."""
