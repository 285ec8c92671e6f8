"""Structured (tabular) data: Rossmann features, preprocessing, loaders and the entity-embedding model.

    joins       the Rossmann CSVs read with their columns checked, joined with checks on every join
    features    date / store / event / closure features, outliers, train/valid splits
    preprocess  TabularProcessor: category codes (0 = unknown), median fill + `_na`, standardisation
    loader      TensorLoader: mini-batches cut from tensors by index
    model       TabularModel (embeddings + MLP), embedding-size rules, exp_rmspe
    experiment  fit_sales_model: one run (processor -> loaders -> model -> Learner -> exp-RMSPE)
    trees       fit_sales_trees: gradient-boosted trees + per-store means; blend with the networks
"""
