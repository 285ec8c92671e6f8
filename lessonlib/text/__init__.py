"""Text: tokenize (spaCy + rules, parallel, cached), vocab, lm_data (bptt stream), awd_lstm (encoder,
decoders, language model, AR/TAR), vectors (pretrained word vectors), generate (sampling), lm (the IMDB
LM recipe shared by notebooks 04 and 05); classifier and bow belong to notebook 05."""
