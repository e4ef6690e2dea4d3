"""Example models built by ``python -m examples``: a digits CNN and a text sentiment classifier.

Each is trained from data that needs no download (scikit-learn's bundled 8x8 digits; a corpus
generated in code) with fixed seeds, and packaged with our ``model-archiver`` into a ``.mar`` file
in the model store that ``config.properties`` serves.
"""
