"""The scorecard: every score of a frame in [0, 1], one module per score.

``q_tech`` (technical quality from the ``quality_scores`` row), ``aesthetic`` (an MLP head
over CLIP image embeddings), ``vibe`` (CLIP similarity to the theme's prompts),
``typography`` (room for a headline), ``composition`` (thirds, horizon, border cut) and
``total`` (the theme's rubric-weighted mean and the hard constraints). ``saliency`` is the
spectral-residual saliency map that typography and composition share.
"""
