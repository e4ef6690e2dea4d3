"""The digits example: a small CNN on scikit-learn's 8x8 digits, served by ``digits_handler.py``."""
