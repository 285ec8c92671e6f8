"""lessonlib: the small library behind the lesson notebooks (dropout, tabular embeddings, text models)."""

__version__ = "0.1.0"
