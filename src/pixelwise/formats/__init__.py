"""File formats shared by datasets (reading) and prediction writers (writing): COCO instances and
results JSON with RLE masks (``formats.coco``), panoptic PNG + segments_info JSON (``formats.panoptic``).

A room of its own so that callbacks write dataset formats without importing ``data``; it imports
nothing of the project.
"""
