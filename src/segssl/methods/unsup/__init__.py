"""Unsupervised segmentation methods."""
