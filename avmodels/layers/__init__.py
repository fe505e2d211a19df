"""Layers and blocks the methods share, one module per kind (as timm's ``layers``).

- :mod:`~avmodels.layers.similarity`: audio-visual similarity maps (a frame with its
  own audio, every frame with every audio);
- :mod:`~avmodels.layers.normalise`: per-map min-max normalisation;
- :mod:`~avmodels.layers.attention`: audio-guided attention pooling (SSPL) and
  flow cross-attention (Hear-The-Flow);
- :mod:`~avmodels.layers.heads`: projection heads (SimSiam's projector and
  predictor, point-wise MLPs);
- :mod:`~avmodels.layers.gather`: the batch gathered across processes, gradients
  flowing back to each block's owner.

Nothing here knows a method; method modules import from here, never from each other.
"""
