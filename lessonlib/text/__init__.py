"""Text: from review text to a language model (notebook 04) and a sentiment classifier (notebook 05).

    tokenize         spaCy + the lesson's rules, parallel, cached
    vocab            token <-> id, rare tokens to xxunk
    lm_loader        LMLoader: the concatenated stream cut into bs rows, read bptt tokens at a time
    awd_lstm         AWD-LSTM encoder, decoders and language model
    lm_callbacks     AR/TAR and the hidden-state reset
    vectors          word2vec trained on the LM's text, the embedding's starting point
    lm               the IMDB LM recipe (texts, sizes, training) shared by notebooks 04 and 05
    saved            the LM file saved and loaded; any saved file read with errors that name it
    generate         sampling from the LM
    classifier_data  labelled reviews, length-bucketed padded batches, the IMDB splits
    classifier       ChunkedEncoder + PoolingHead = TextClassifier; predict; saved beside the LM
    fine_tune        training the classifier: from the LM or from scratch, two recipes
    confidence       temperatures fitted by text length for `predict`
    nbsvm            the bag-of-words baseline (NB-weighted logistic regression)
"""
