"""Layers a model can be built from, each the same computation as a torch layer, computed otherwise.

    dropout_mask     the one dropout mask (Bernoulli keep-mask, inverted scaling, broadcast)
    one_hot_linear   OneHotLinear: nn.Linear on one-hot codes, computed as a sum of weight columns
    onednn_linear    OneDNNLinear: nn.Linear (+ ReLU) as one fused oneDNN product on fp32 CPUs
    small_p_dropout  SmallPDropout: nn.Dropout at small p, drawing only the dropped positions
"""
